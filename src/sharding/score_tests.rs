//! Unit tests of the shard-key scoring: distribution, candidates, placements, the
//! score and the plan, on hand-built schema models (no server).

use super::*;
use crate::sharding::candidates::*;
use crate::sharding::model::*;
use crate::sharding::plan::*;

fn stats(nd: f64, mcv: &[(&str, f64)]) -> ColumnStats {
    ColumnStats {
        null_frac: 0.0,
        n_distinct: nd,
        mcv: mcv.iter().map(|(v, f)| (v.to_string(), *f)).collect(),
    }
}

#[test]
fn n_distinct_is_made_absolute() {
    assert_eq!(absolute_n_distinct(-1.0, 1000.0), 1000.0);
    assert_eq!(absolute_n_distinct(-0.5, 1000.0), 500.0);
    assert_eq!(absolute_n_distinct(42.0, 1000.0), 42.0);
    assert_eq!(absolute_n_distinct(f64::NAN, 1000.0), 0.0);
}

#[test]
fn one_shard_holds_everything() {
    assert_eq!(expected_hottest_share(&[0.5, 0.5], 0.0, 0.0, 1), 1.0);
}

#[test]
fn two_equal_values_on_two_shards() {
    // same shard with probability 1/2 (share 1), else 1/2 each: expectation 0.75
    let h = expected_hottest_share(&[0.5, 0.5], 0.0, 0.0, 2);
    assert!((h - 0.75).abs() < 0.03, "got {h}");
}

#[test]
fn one_value_is_one_shard() {
    let h = expected_hottest_share(&[1.0], 0.0, 0.0, 8);
    assert!((h - 1.0).abs() < 1e-9);
}

#[test]
fn many_uniform_values_approach_the_fair_share() {
    for n in [2u32, 8, 32] {
        let h = expected_hottest_share(&[], 1.0, 1_000_000.0, n);
        let fair = 1.0 / n as f64;
        assert!(h >= fair * 0.999 && h < fair * 1.05, "n={n}: {h}");
    }
}

#[test]
fn few_uniform_values_are_lumpy() {
    // 10 equal values on 8 shards: some shard gets at least 2 of them
    let h = expected_hottest_share(&[], 1.0, 10.0, 8);
    assert!((0.2..0.45).contains(&h), "got {h}");
    // and on 32 shards the hottest still holds at least one value's 10%
    assert!(expected_hottest_share(&[], 1.0, 10.0, 32) >= 0.1);
}

#[test]
fn explicit_and_approximate_remainders_agree() {
    // 4000 values are placed one by one, 5000 through the normal approximation
    let a = expected_hottest_share(&[0.2], 0.8, 4000.0, 16);
    let b = expected_hottest_share(&[0.2], 0.8, 5000.0, 16);
    assert!((a - b).abs() < 0.01, "{a} vs {b}");
}

#[test]
fn a_whale_sets_the_floor() {
    // a value with 23% of rows: no shard count takes the hottest below it
    for n in [2u32, 4, 8, 16, 32, 4096] {
        let h = expected_hottest_share(&[0.234], 0.766, 99.0, n);
        assert!(h >= 0.234, "n={n}: {h}");
        assert!(h <= 1.0);
    }
    let h32 = expected_hottest_share(&[0.234], 0.766, 99.0, 32);
    assert!(h32 < 0.32, "{h32}");
}

#[test]
fn the_estimate_is_deterministic_and_monotone() {
    let a = expected_hottest_share(&[0.1, 0.05], 0.85, 300.0, 8);
    let b = expected_hottest_share(&[0.1, 0.05], 0.85, 300.0, 8);
    assert_eq!(a, b);
    let mut prev = 1.0;
    for n in [2u32, 4, 8, 16, 32] {
        let h = expected_hottest_share(&[0.1, 0.05], 0.85, 300.0, n);
        assert!(h < prev, "{n}: {h} >= {prev}");
        prev = h;
    }
}

#[test]
fn combine_weights_tables_by_rows() {
    let big = stats(100.0, &[("1", 0.3), ("2", 0.1)]);
    let small = stats(100.0, &[("2", 0.5)]);
    let d = combine(&[(900.0, &big), (100.0, &small)]);
    assert_eq!(d.mcv[0].0, "1");
    // value 1: 270 rows in big + small's average non-MCV frequency (50/99 rows)
    assert!((d.mcv[0].1 - (270.0 + 50.0 / 99.0) / 1000.0).abs() < 1e-9);
    // value 2: 90 + 50
    assert!((d.mcv[1].1 - 0.14).abs() < 0.001);
    assert_eq!(d.distinct, 100.0);
    assert!((d.mcv.iter().map(|m| m.1).sum::<f64>() + d.rest_mass - 1.0).abs() < 1e-9);
    assert_eq!(d.rest_values, 98.0);
}

#[test]
fn combine_counts_nulls() {
    let s = ColumnStats {
        null_frac: 0.25,
        n_distinct: 1000.0,
        mcv: vec![],
    };
    let d = combine(&[(400.0, &s)]);
    assert!((d.null_share - 0.25).abs() < 1e-9);
    assert!((d.rest_mass - 1.0).abs() < 1e-9);
}

#[test]
fn complete_mcv_lists_are_renormalized() {
    let s = stats(2.0, &[("a", 0.61), ("b", 0.40)]);
    let d = combine(&[(100.0, &s)]);
    assert_eq!(d.rest_values, 0.0);
    assert!((d.mcv.iter().map(|m| m.1).sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn literals() {
    assert_eq!(sql_literal("42"), "42");
    assert_eq!(sql_literal("-3"), "-3");
    assert_eq!(sql_literal("acme"), "'acme'");
    assert_eq!(sql_literal("o'neil"), "'o''neil'");
    assert_eq!(sql_literal(""), "''");
    assert_eq!(sql_literal("1.5"), "1.5");
}

/// A small model of the lab: tenants -> customers -> orders -> order_lines,
/// products -> order_lines, orders -> payments, and a big log table without the key.
pub(super) fn lab_like(with_log: bool) -> SchemaModel {
    let zipf: Vec<(String, f64)> = {
        let h: f64 = (1..=100).map(|i| (i as f64).powf(-1.1)).sum();
        (1..=100)
            .map(|i| (i.to_string(), (i as f64).powf(-1.1) / h))
            .collect()
    };
    let tenant = ColumnStats {
        null_frac: 0.0,
        n_distinct: 100.0,
        mcv: zipf,
    };
    let uniq = |rows: f64| ColumnStats {
        null_frac: 0.0,
        n_distinct: rows,
        mcv: vec![],
    };
    let t = |name: &str, rows: f64, cols: &[&str], pk: &[&str], stats: Vec<(&str, ColumnStats)>| {
        Table {
            name: name.into(),
            rows,
            bytes: (rows * 100.0) as i64,
            columns: cols
                .iter()
                .map(|c| (c.to_string(), "bigint".to_string()))
                .collect(),
            pk: pk.iter().map(|c| c.to_string()).collect(),
            uniques: vec![],
            stats: stats.into_iter().map(|(c, s)| (c.to_string(), s)).collect(),
            tuples_read: 0.0,
            tuples_written: 0.0,
        }
    };
    let mut tables = vec![
        t(
            "tenants",
            100.0,
            &["tenant_id", "name"],
            &["tenant_id"],
            vec![("tenant_id", uniq(100.0))],
        ),
        t(
            "customers",
            100_000.0,
            &["tenant_id", "customer_id"],
            &["tenant_id", "customer_id"],
            vec![
                ("tenant_id", tenant.clone()),
                ("customer_id", uniq(100_000.0)),
            ],
        ),
        t(
            "products",
            20_000.0,
            &["tenant_id", "product_id"],
            &["tenant_id", "product_id"],
            vec![
                ("tenant_id", tenant.clone()),
                ("product_id", uniq(20_000.0)),
            ],
        ),
        t(
            "orders",
            1_000_000.0,
            &["tenant_id", "order_id", "customer_id"],
            &["tenant_id", "order_id"],
            vec![
                ("tenant_id", tenant.clone()),
                ("order_id", uniq(1e6)),
                ("customer_id", uniq(90_000.0)),
            ],
        ),
        t(
            "order_lines",
            2_500_000.0,
            &["tenant_id", "order_id", "line_no", "product_id"],
            &["tenant_id", "order_id", "line_no"],
            vec![
                ("tenant_id", tenant.clone()),
                ("order_id", uniq(1e6)),
                ("product_id", uniq(20_000.0)),
                (
                    "line_no",
                    stats(5.0, &[("1", 0.4), ("2", 0.3), ("3", 0.2), ("4", 0.1)]),
                ),
            ],
        ),
        t(
            "payments",
            970_000.0,
            &["tenant_id", "payment_id", "order_id"],
            &["tenant_id", "payment_id"],
            vec![
                ("tenant_id", tenant.clone()),
                ("order_id", uniq(970_000.0)),
                ("payment_id", uniq(970_000.0)),
            ],
        ),
    ];
    if with_log {
        tables.push(t(
            "audit_log",
            3_000_000.0,
            &["id", "msg"],
            &["id"],
            vec![("id", uniq(3e6))],
        ));
    }
    let fk = |name: &str, child: &str, parent: &str, pairs: &[(&str, &str)]| ForeignKey {
        name: name.into(),
        child: child.into(),
        parent: parent.into(),
        pairs: pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    };
    SchemaModel {
        schema: "shop".into(),
        tables,
        fks: vec![
            fk("c_t", "customers", "tenants", &[("tenant_id", "tenant_id")]),
            fk("p_t", "products", "tenants", &[("tenant_id", "tenant_id")]),
            fk(
                "o_c",
                "orders",
                "customers",
                &[("tenant_id", "tenant_id"), ("customer_id", "customer_id")],
            ),
            fk(
                "l_o",
                "order_lines",
                "orders",
                &[("tenant_id", "tenant_id"), ("order_id", "order_id")],
            ),
            fk(
                "l_p",
                "order_lines",
                "products",
                &[("tenant_id", "tenant_id"), ("product_id", "product_id")],
            ),
            fk(
                "pay_o",
                "payments",
                "orders",
                &[("tenant_id", "tenant_id"), ("order_id", "order_id")],
            ),
        ],
        workload: None,
    }
}

#[test]
fn candidates_follow_foreign_keys() -> Result<(), String> {
    let m = lab_like(false);
    let c = candidates(&m);
    let tenant = c
        .iter()
        .find(|c| c.name == "tenant_id")
        .ok_or("no tenant_id candidate")?;
    assert_eq!(tenant.columns.len(), 6);
    let order = c
        .iter()
        .find(|c| c.name == "order_id")
        .ok_or("no order_id candidate")?;
    let tabs: Vec<&str> = order.columns.keys().map(|s| s.as_str()).collect();
    assert_eq!(tabs, vec!["order_lines", "orders", "payments"]);
    // line_no is only in one primary key: a candidate of one table
    assert!(c
        .iter()
        .any(|c| c.name == "line_no" && c.columns.len() == 1));
    Ok(())
}

#[test]
fn same_named_columns_without_fk_join_the_candidate() {
    let mut m = lab_like(false);
    m.tables.push(Table {
        name: "tenant_ranges".into(),
        rows: 100.0,
        columns: vec![("tenant_id".into(), "bigint".into())],
        // its own primary key, but no foreign key: it joins by name
        pk: vec!["tenant_id".into()],
        ..Default::default()
    });
    let c = candidates(&m);
    let tenant: Vec<&Candidate> = c.iter().filter(|c| c.name == "tenant_id").collect();
    assert_eq!(tenant.len(), 1, "{tenant:?}");
    assert!(tenant[0].columns.contains_key("tenant_ranges"));
}

#[test]
fn the_tenant_key_ranks_first_and_names_the_whale() -> Result<(), String> {
    let m = lab_like(true);
    let adv = advise(&m, &[2, 4, 8, 16, 32], &[]);
    assert_eq!(
        adv[0].key,
        "tenant_id",
        "{:#?}",
        adv.iter().map(|a| (&a.key, a.score)).collect::<Vec<_>>()
    );
    assert_eq!(adv[0].rank, 1);
    assert_eq!(adv[0].hot[0].0, "1");
    assert!(adv[0].reference.contains(&"tenants".to_string()));
    assert!(adv[0].reference.iter().all(|r| r != "orders"));
    assert_eq!(adv[0].local, vec!["audit_log".to_string()]);
    assert!(adv[0].cross.is_empty());
    // order_id co-locates lines and payments with orders, but not customers or products
    let order = adv
        .iter()
        .find(|a| a.key == "order_id")
        .ok_or("no order_id candidate")?;
    assert!(order.score < adv[0].score);
    assert!(order
        .cross
        .iter()
        .any(|c| c.starts_with("orders -> customers")));
    // the whale caps balance: the hottest shard never drops below its share
    assert!(adv[0].hottest.iter().all(|h| *h >= adv[0].hot[0].1));
    assert!(adv[0].reasoning.contains("Hot keys: 1 ("));
    // ranks are 1..n without gaps
    assert!(adv.iter().enumerate().all(|(i, a)| a.rank == i + 1));
    Ok(())
}

#[test]
fn a_uniform_key_balances_better_but_loses_on_colocation() -> Result<(), String> {
    let m = lab_like(false);
    let adv = advise(&m, &[8], &[]);
    let t = adv
        .iter()
        .find(|a| a.key == "tenant_id")
        .ok_or("no tenant_id candidate")?;
    let o = adv
        .iter()
        .find(|a| a.key == "order_id")
        .ok_or("no order_id candidate")?;
    assert!(o.components.balance > t.components.balance);
    assert!(t.components.colocation > o.components.colocation);
    assert!(t.score > o.score);
    Ok(())
}

#[test]
fn workload_routability_is_counted() -> Result<(), String> {
    let mut m = lab_like(false);
    m.workload = Some(vec![
        Statement {
            query: "SELECT * FROM shop.orders WHERE tenant_id = $1 AND order_id = $2".into(),
            calls: 900.0,
            total_ms: 90.0,
        },
        Statement {
            query:
                "SELECT date_trunc('day', created_at), sum(total_cents) FROM shop.orders GROUP BY 1"
                    .into(),
            calls: 100.0,
            total_ms: 5000.0,
        },
        Statement {
            query: "BEGIN".into(),
            calls: 1000.0,
            total_ms: 1.0,
        },
    ]);
    let adv = advise(&m, &[8], &[]);
    let t = adv
        .iter()
        .find(|a| a.key == "tenant_id")
        .ok_or("no tenant_id candidate")?;
    assert!((t.routable_share.ok_or("no routable share")? - 0.9).abs() < 1e-9);
    // by time the fan-out dominates: 5000 of 5090 ms
    assert!((t.routable_time_share.ok_or("no routable time share")? - 90.0 / 5090.0).abs() < 1e-9);
    assert!(t
        .reasoning
        .contains("fan out to every shard (98% of their execution time)"));
    assert!(t.components.access_from_workload);
    assert_eq!(t.fan_out.len(), 1);
    assert!(t.fan_out[0].2.starts_with("SELECT date_trunc"));
    assert_eq!(t.read_share, Some(1.0));
    // order_id: only the first statement filters on it as well
    let o = adv
        .iter()
        .find(|a| a.key == "order_id")
        .ok_or("no order_id candidate")?;
    assert!((o.routable_share.ok_or("no routable share")? - 0.9).abs() < 1e-9);
    Ok(())
}

#[test]
fn the_plan_orders_parents_first_and_isolates_the_whale() -> Result<(), String> {
    let m = lab_like(false);
    let adv = advise(&m, &[32], &[]);
    let q = |t: &str| format!("shop.{t}");
    let steps = plan(&m, &adv[0], 32, &q);
    let ddl: Vec<&str> = steps.iter().map(|s| s.ddl.as_str()).collect();
    assert_eq!(ddl[0], "SET citus.shard_count = 32;");
    assert!(ddl.contains(&"SELECT create_reference_table('shop.tenants');"));
    let pos = |needle: &str| {
        steps
            .iter()
            .position(|s| s.ddl.contains(needle))
            .ok_or(format!("no step with {needle}"))
    };
    assert!(pos("create_reference_table('shop.tenants')")? < pos("create_distributed_table(")?);
    assert!(pos("'shop.customers', 'tenant_id'")? < pos("'shop.orders', 'tenant_id'")?);
    assert!(pos("'shop.orders', 'tenant_id'")? < pos("'shop.order_lines', 'tenant_id'")?);
    assert!(steps[pos("create_distributed_table(")?]
        .ddl
        .contains("colocate_with => 'none'"));
    assert!(steps.iter().any(|s| s.action == "isolate hot key"
        && s.ddl == "SELECT isolate_tenant_to_new_shard('shop.order_lines', 1, cascade_option => 'CASCADE');"));
    assert!(steps.iter().any(|s| s.action == "split hot key"));
    assert!(steps.iter().any(|s| s.action == "read replicas"));
    assert_eq!(steps.last().map(|s| s.action.as_str()), Some("check"));
    Ok(())
}

#[test]
fn balance_and_score_bounds() {
    assert!((balance(&[2, 4], &[0.5, 0.25]) - 1.0).abs() < 1e-12);
    assert!((balance(&[4], &[0.5]) - 0.5).abs() < 1e-12);
    let c = Components {
        colocation: 1.0,
        coverage: 1.0,
        access: 1.0,
        balance: 1.0,
        access_from_workload: false,
    };
    assert!((score(&c, 0.0) - 100.0).abs() < 1e-9);
    assert!((score(&c, 0.5) - 50.0).abs() < 1e-9);
}
