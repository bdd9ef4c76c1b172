//! The lab's two business anomalies on a demo tenant of the shop schema: lost_update
//! (a stock decrement) and write_skew (a credit check), each under an isolation level or
//! a locking strategy. The interleaved script, the fixture SQL and the verdict from the
//! final state. Pure: no SPI, unit-tested without a server.

use super::driver::Step;

pub const ANOMALIES: &[&str] = &["lost_update", "write_skew"];
pub const MODES: &[&str] = &[
    "read committed",
    "repeatable read",
    "serializable",
    "select for update",
    "for no key update",
    "atomic update",
    "advisory lock",
];

fn isolation_level(mode: &str) -> &'static str {
    match mode {
        "repeatable read" => "REPEATABLE READ",
        "serializable" => "SERIALIZABLE",
        _ => "READ COMMITTED",
    }
}

/// The interleaved script for (anomaly, mode) on demo tenant `t`. Pure: unit-tested.
pub fn script(anomaly: &str, mode: &str, t: i64, token: i64) -> Vec<Step> {
    let both = |sql: &dyn Fn(usize) -> String| -> Vec<Step> {
        (0..2)
            .map(|s| Step {
                session: s,
                label: if sql(s) == "COMMIT" { "commit" } else { "" },
                sql: sql(s),
            })
            .collect()
    };
    let mut out = Vec::new();
    out.extend(both(&|_| {
        format!("BEGIN ISOLATION LEVEL {}", isolation_level(mode))
    }));
    match anomaly {
        "lost_update" => {
            let lock = match mode {
                "select for update" => " FOR UPDATE",
                "for no key update" => " FOR NO KEY UPDATE",
                _ => "",
            };
            if mode == "advisory lock" {
                out.extend(both(&|_| {
                    format!(
                        "SELECT pg_advisory_xact_lock(hashtext('capstone-demo-stock'), {t})::text"
                    )
                }));
            }
            if mode != "atomic update" {
                out.extend(both(&|_| {
                    format!(
                        "SELECT set_config('capstone_demo.read', on_hand::text, false) FROM shop.stock WHERE tenant_id = {t}{lock}"
                    )
                }));
                out.extend(both(&|_| {
                    format!(
                        "UPDATE shop.stock SET on_hand = current_setting('capstone_demo.read')::int - 1 WHERE tenant_id = {t} RETURNING on_hand::text"
                    )
                }));
            } else {
                out.extend(both(&|_| {
                    format!("UPDATE shop.stock SET on_hand = on_hand - 1 WHERE tenant_id = {t} RETURNING on_hand::text")
                }));
            }
        }
        _ => {
            // write_skew: each session checks the tenant's open exposure against its
            // credit limit and, if there is room, books a 6000-cent pending order
            let sum = format!(
                "coalesce((SELECT sum(total_cents) FROM shop.orders WHERE tenant_id = {t} AND status = 'pending'), 0)"
            );
            match mode {
                "select for update" | "for no key update" => {
                    let lock = if mode == "select for update" {
                        "FOR UPDATE"
                    } else {
                        "FOR NO KEY UPDATE"
                    };
                    out.extend(both(&|_| {
                        format!(
                            "SELECT tenant_id::text FROM shop.tenants WHERE tenant_id = {t} {lock}"
                        )
                    }));
                }
                "advisory lock" => out.extend(both(&|_| {
                    format!(
                        "SELECT pg_advisory_xact_lock(hashtext('capstone-demo-credit'), {t})::text"
                    )
                })),
                _ => {}
            }
            let insert = |s: usize, guard: &str| {
                format!(
                    "INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,
                                              currency, total_cents, created_at, updated_at)
                     SELECT {t}, 'demo-{}-{token}', c.customer_id, 'pending', 'unfulfilled', 'awaiting', 'EUR', 6000, now(), now()
                       FROM shop.customers c WHERE c.tenant_id = {t} AND {guard}
                     RETURNING order_id::text",
                    if s == 0 { "a" } else { "b" }
                )
            };
            if mode == "atomic update" {
                // check and write in one statement: still two snapshots that cannot see each other
                out.extend(both(&|s| {
                    insert(
                        s,
                        &format!(
                            "{sum} + 6000 <= (SELECT credit_limit_cents FROM shop.tenants WHERE tenant_id = {t})"
                        ),
                    )
                }));
            } else {
                out.extend(both(&|_| {
                    format!(
                        "SELECT set_config('capstone_demo.ok', CASE WHEN {sum} + 6000 <= credit_limit_cents THEN 'ok' ELSE 'over' END, false)
                           FROM shop.tenants WHERE tenant_id = {t}"
                    )
                }));
                out.extend(both(&|s| {
                    insert(s, "current_setting('capstone_demo.ok') = 'ok'")
                }));
            }
        }
    }
    out.extend(both(&|_| "COMMIT".to_string()));
    out
}

/// Remove demo fixtures (this run's, and any a crashed run left behind).
pub const TEARDOWN: &str = "
WITH t AS (SELECT tenant_id FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'),
     o AS (DELETE FROM shop.orders WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1),
     s AS (DELETE FROM shop.stock WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1)
SELECT (SELECT count(*) FROM o) + (SELECT count(*) FROM s)";

/// Fixture tenants still present before setup: each is a run that never cleaned up.
pub const LEFTOVERS: &str = "SELECT coalesce(string_agg(format('tenant %s (%s)', tenant_id, slug), ', ' ORDER BY tenant_id), '')
                           FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'";

pub fn setup_sql(token: i64, customer_cols: &str, customer_vals: &str) -> String {
    format!(
        "WITH t AS (INSERT INTO shop.tenants (slug, name, plan, region, currency, credit_limit_cents)
                    VALUES ('capstone-demo-{token}', 'capstone anomaly demo', 'free', 'eu', 'EUR', 10000)
                    RETURNING tenant_id),
              c AS (INSERT INTO shop.customers (tenant_id{customer_cols})
                    SELECT tenant_id{customer_vals} FROM t
                    RETURNING tenant_id),
              p AS (INSERT INTO shop.products (tenant_id, sku, name, category, price_cents)
                    SELECT tenant_id, 'DEMO', 'Demo product', 'toys', 500 FROM t RETURNING tenant_id, product_id),
              s AS (INSERT INTO shop.stock (tenant_id, product_id, on_hand) SELECT tenant_id, product_id, 10 FROM p RETURNING 1)
         SELECT (SELECT tenant_id FROM t)::text || ',' || (SELECT count(*) FROM c) || ',' || (SELECT count(*) FROM s)"
    )
}

pub const DROP_PARENTS: &str = "
WITH t AS (SELECT tenant_id FROM shop.tenants WHERE slug LIKE 'capstone-demo-%'),
     p AS (DELETE FROM shop.products WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1),
     c AS (DELETE FROM shop.customers WHERE tenant_id IN (SELECT tenant_id FROM t) RETURNING 1)
SELECT (SELECT count(*) FROM p) + (SELECT count(*) FROM c)";
pub const DROP_TENANT: &str =
    "WITH d AS (DELETE FROM shop.tenants WHERE slug LIKE 'capstone-demo-%' RETURNING 1) SELECT count(*)::text FROM d";

/// Everything the lab demo's fixture leaves, in the order it can be removed.
pub const LAB_TEARDOWN: &[&str] = &[TEARDOWN, DROP_PARENTS, DROP_TENANT];

/// Outcome of a run from the final state.
pub fn classify(
    anomaly: &str,
    committed: usize,
    final_value: i64,
    failed_codes: &[String],
) -> (bool, String) {
    let happened = match anomaly {
        "lost_update" => final_value != 10 - committed as i64,
        _ => final_value > 10000,
    };
    let verdict = if happened {
        match anomaly {
            "lost_update" => format!("ANOMALY: {committed} decrements committed but on_hand is {final_value} (expected {})", 10 - committed as i64),
            _ => format!("ANOMALY: open orders total {final_value} cents, over the 10000-cent credit limit"),
        }
    } else if let Some(c) = failed_codes.iter().find(|c| c.starts_with("40")) {
        format!("prevented by error {c}: one transaction must retry")
    } else {
        match anomaly {
            "lost_update" => format!(
                "prevented: on_hand is {final_value} after {committed} committed decrements"
            ),
            _ => format!(
                "prevented: open orders total {final_value} cents, within the 10000-cent limit"
            ),
        }
    };
    (happened, verdict)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn every_script_interleaves_and_ends_in_commits() {
        for a in ANOMALIES {
            for m in MODES {
                let s = script(a, m, 7, 1);
                assert_eq!(s.first().map(|x| x.session), Some(0));
                assert_eq!(s.iter().filter(|x| x.sql == "COMMIT").count(), 2, "{a}/{m}");
                assert_eq!(
                    s.iter().filter(|x| x.session == 0).count(),
                    s.iter().filter(|x| x.session == 1).count()
                );
                assert!(
                    s.iter().all(|x| !x.sql.contains(';')),
                    "one statement per step"
                );
            }
        }
    }

    #[test]
    fn isolation_levels_follow_the_mode() {
        assert!(script("lost_update", "serializable", 1, 1)[0]
            .sql
            .ends_with("SERIALIZABLE"));
        assert!(script("lost_update", "select for update", 1, 1)[0]
            .sql
            .ends_with("READ COMMITTED"));
        assert!(script("lost_update", "select for update", 1, 1)
            .iter()
            .any(|s| s.sql.ends_with("FOR UPDATE")));
        assert!(!script("lost_update", "atomic update", 1, 1)
            .iter()
            .any(|s| s.sql.contains("set_config")));
    }

    #[test]
    fn outcomes() {
        assert!(classify("lost_update", 2, 9, &[]).0);
        assert!(!classify("lost_update", 2, 8, &[]).0);
        let (h, v) = classify("lost_update", 1, 9, &["40001".into()]);
        assert!(!h);
        assert!(v.starts_with("prevented by error 40001"));
        assert!(classify("write_skew", 2, 12000, &[]).0);
        assert!(!classify("write_skew", 1, 6000, &[]).0);
    }
}
