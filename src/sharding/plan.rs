//! The distribution plan for a chosen key: shard count, reference tables, distributed
//! tables in foreign-key order with co-location, hot-key isolation, fan-out queries and
//! a check, each step with its Citus DDL and why. Pure logic over the advice.

use super::distribution::expected_hottest_share;
use super::model::{SchemaModel, Table};
use super::score::Advice;
use crate::infra::format::pct;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One step of the plan: what to do, to which object, the DDL, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: String,
    pub object: String,
    pub ddl: String,
    pub why: String,
}

/// A SQL literal for a key value: numbers as they are, everything else quoted.
pub fn sql_literal(v: &str) -> String {
    let numeric = !v.is_empty()
        && v.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && v.trim_start_matches('-')
            .chars()
            .any(|c| c.is_ascii_digit());
    if numeric {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

/// A SQL string literal holding a (qualified, quoted) identifier.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Distributed tables in foreign-key order: a parent before its children, so each
/// `create_distributed_table` finds its referenced tables already distributed.
pub fn creation_order(model: &SchemaModel, a: &Advice) -> Vec<String> {
    let set: BTreeSet<&str> = a.distributed.iter().map(|s| s.as_str()).collect();
    let mut deps: BTreeMap<&str, BTreeSet<&str>> =
        set.iter().map(|t| (*t, BTreeSet::new())).collect();
    for fk in &model.fks {
        if fk.child != fk.parent
            && set.contains(fk.child.as_str())
            && set.contains(fk.parent.as_str())
        {
            if let Some(d) = deps.get_mut(fk.child.as_str()) {
                d.insert(fk.parent.as_str());
            }
        }
    }
    // how many tables depend on each, directly or through others: the root of the
    // biggest subtree goes first and anchors the co-location group
    let descendants = |t: &str| -> usize {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            for (child, parents) in &deps {
                if parents.contains(x) && seen.insert(child) {
                    stack.push(child);
                }
            }
        }
        seen.len()
    };
    let mut done: Vec<String> = Vec::new();
    while done.len() < set.len() {
        let ready: Option<&str> = deps
            .iter()
            .filter(|(t, _)| !done.iter().any(|d| d == *t))
            .filter(|(_, d)| d.iter().all(|p| done.iter().any(|x| x == p)))
            .map(|(t, _)| *t)
            .max_by(|a, b| descendants(a).cmp(&descendants(b)).then_with(|| b.cmp(a)));
        match ready {
            Some(t) => done.push(t.to_string()),
            None => {
                // a cycle: take the rest alphabetically
                for t in &set {
                    if !done.iter().any(|d| d == t) {
                        done.push(t.to_string());
                    }
                }
            }
        }
    }
    done
}

/// The plan for one candidate: shard count, reference tables, distributed tables
/// with their co-location, cross-shard work, hot-key mitigation, fan-out queries and
/// a check. `qualify` turns a table name into its quoted, schema-qualified form.
pub fn plan(
    model: &SchemaModel,
    a: &Advice,
    shards: u32,
    qualify: &dyn Fn(&str) -> String,
) -> Vec<Step> {
    let tables: HashMap<&str, &Table> = model.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut steps = Vec::new();
    let hottest = expected_hottest_share(
        &a.dist.mcv.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        a.dist.rest_mass,
        a.dist.rest_values,
        shards,
    );
    steps.push(Step {
        action: "shard count".into(),
        object: format!("{shards} shards"),
        ddl: format!("SET citus.shard_count = {shards};"),
        why: format!(
            "hash-distributing by {} over {shards} shards: the hottest shard is expected to hold {} of rows (fair share {}); more shards than values ({:.0}) leave shards empty",
            a.key,
            pct(hottest),
            pct(1.0 / shards as f64),
            a.dist.distinct
        ),
    });
    let mut inbound: HashMap<&str, usize> = HashMap::new();
    for fk in &model.fks {
        if fk.child != fk.parent {
            *inbound.entry(fk.parent.as_str()).or_default() += 1;
        }
    }
    for r in &a.reference {
        let t = tables.get(r.as_str());
        let rows = t.map_or(0.0, |t| t.rows);
        let n_in = inbound.get(r.as_str()).copied().unwrap_or(0);
        let why = if a.columns.contains_key(r) {
            format!(
                "the key's own table ({:.0} rows, one per {} value), referenced by {n_in} foreign key(s): replicated to every node, so joins and FK checks against it stay local and cross-{} reports can join it anywhere",
                rows, a.key, a.key
            )
        } else {
            format!(
                "lacks {} and is small ({:.0} rows{}): a copy on every node keeps joins with it local",
                a.key,
                rows,
                if n_in > 0 {
                    format!(", referenced by {n_in} foreign key(s)")
                } else {
                    String::new()
                }
            )
        };
        steps.push(Step {
            action: "reference table".into(),
            object: qualify(r),
            ddl: format!("SELECT create_reference_table({});", lit(&qualify(r))),
            why,
        });
    }
    let order = creation_order(model, a);
    let anchor = order.first().cloned().unwrap_or_default();
    for (i, t) in order.iter().enumerate() {
        let col = a.columns.get(t).cloned().unwrap_or_else(|| a.key.clone());
        let rows = tables.get(t.as_str()).map_or(0.0, |t| t.rows);
        let joins: Vec<&str> = model
            .fks
            .iter()
            .filter(|fk| &fk.child == t && a.distributed.contains(&fk.parent))
            .map(|fk| fk.parent.as_str())
            .collect();
        let (ddl, why) = if i == 0 {
            (
                format!(
                    "SELECT create_distributed_table({}, {}, colocate_with => 'none');",
                    lit(&qualify(t)),
                    lit(&col)
                ),
                format!(
                    "{:.0} rows; first table of the co-location group (no foreign key to another distributed table)",
                    rows
                ),
            )
        } else {
            (
                format!(
                    "SELECT create_distributed_table({}, {}, colocate_with => {});",
                    lit(&qualify(t)),
                    lit(&col),
                    lit(&qualify(&anchor))
                ),
                if joins.is_empty() {
                    format!(
                        "{:.0} rows; co-located with {anchor}: same {} on the same shard",
                        rows, a.key
                    )
                } else {
                    format!(
                        "{:.0} rows; co-located with {anchor}: its joins to {} stay on one shard",
                        rows,
                        joins.join(", ")
                    )
                },
            )
        };
        steps.push(Step {
            action: "distributed table".into(),
            object: qualify(t),
            ddl,
            why,
        });
    }
    for l in &a.local {
        let rows = tables.get(l.as_str()).map_or(0.0, |t| t.rows);
        steps.push(Step {
            action: "add the key".into(),
            object: qualify(l),
            ddl: format!(
                "ALTER TABLE {} ADD COLUMN {} {};  -- backfill from its parent, then distribute it with the others",
                qualify(l),
                a.key,
                a.key_type
            ),
            why: format!(
                "{:.0} rows without {}: too big to replicate, so every join with it crosses shards until it carries the key",
                rows, a.key
            ),
        });
    }
    for c in &a.cross {
        steps.push(Step {
            action: "cross-shard join".into(),
            object: c.clone(),
            ddl: format!("-- no DDL: this foreign key does not pair {} with {}; Citus cannot enforce it across shards", a.key, a.key),
            why: "joins along this foreign key need rows from other shards (repartition), and the constraint must be dropped or the key added".into(),
        });
    }
    let largest = a
        .distributed
        .iter()
        .max_by(|x, y| {
            let rx = tables.get(x.as_str()).map_or(0.0, |t| t.rows);
            let ry = tables.get(y.as_str()).map_or(0.0, |t| t.rows);
            rx.total_cmp(&ry).then_with(|| y.cmp(x))
        })
        .cloned()
        .unwrap_or_default();
    let fair = 1.0 / shards as f64;
    for (i, (v, s)) in a.hot.iter().enumerate().take(3) {
        let lv = sql_literal(v);
        let times = s / fair;
        steps.push(Step {
            action: "isolate hot key".into(),
            object: format!("{} = {v}", a.key),
            ddl: format!(
                "SELECT isolate_tenant_to_new_shard({}, {lv}, cascade_option => 'CASCADE');",
                lit(&qualify(&largest))
            ),
            why: format!(
                "{v} alone holds {} of rows, {:.1}x a fair shard at {shards} shards: give it a shard of its own (with every co-located table)",
                pct(*s),
                times
            ),
        });
        steps.push(Step {
            action: "move hot shard".into(),
            object: format!("{} = {v}", a.key),
            ddl: format!(
                "SELECT citus_move_shard_placement(get_shard_id_for_distribution_column({}, {lv}), 'worker-1', 5432, 'worker-hot-{}', 5432);",
                lit(&qualify(&largest)),
                i + 1
            ),
            why: format!(
                "then move the isolated shard to a node with room (names are placeholders): the node holding {v} should carry little else"
            ),
        });
        if i == 0 {
            let split_needed = *s >= 2.0 * fair;
            steps.push(Step {
                action: "split hot key".into(),
                object: format!("{} = {v}", a.key),
                ddl: if split_needed {
                    format!(
                        "-- no single DDL: when {v} outgrows one node, move it to a cluster (or schema) of its own and distribute its tables there by a second key, such as the order id"
                    )
                } else {
                    "-- not needed: it fits within a fair shard".into()
                },
                why: format!(
                    "isolation gives {v} one whole shard, but one shard lives on one node: at {} of rows it stays {:.1}x a fair shard; splitting a single key value is an application change, not a rebalance",
                    pct(*s),
                    times
                ),
            });
            let (ddl, why) = match a.read_share {
                Some(r) if r >= 0.5 => (
                    "SELECT citus_add_secondary_node('worker-hot-1-replica', 5432, 'worker-hot-1', 5432);  -- read-only sessions connect with options='-c citus.use_secondary_nodes=always'".to_string(),
                    format!("reads are {} of the calls on these tables: a streaming replica of the hot node takes {v}'s reads off its primary", pct(r)),
                ),
                Some(r) => (
                    "-- not recommended: replicas do not take writes".to_string(),
                    format!("reads are only {} of the calls on these tables; a replica would not relieve the writes that make {v} hot", pct(r)),
                ),
                None => (
                    "-- undecided: no read/write statistics".to_string(),
                    "no pg_stat_statements or table counters: measure the read share before adding replicas".into(),
                ),
            };
            steps.push(Step {
                action: "read replicas".into(),
                object: format!("{} = {v}", a.key),
                ddl,
                why,
            });
        }
    }
    for (calls, ms, q) in &a.fan_out {
        steps.push(Step {
            action: "fan-out query".into(),
            object: q.clone(),
            ddl: format!(
                "-- add WHERE {} = $n if the query is about one {}; otherwise it runs on all {shards} shards",
                a.key, a.key
            ),
            why: format!(
                "{calls:.0} call{}, {ms:.0} ms in total: no equality filter on {}",
                if *calls == 1.0 { "" } else { "s" },
                a.key
            ),
        });
    }
    steps.push(Step {
        action: "check".into(),
        object: "citus_shards".into(),
        ddl: "SELECT nodename, count(*) AS shards, pg_size_pretty(sum(shard_size)) AS size FROM citus_shards GROUP BY nodename ORDER BY sum(shard_size) DESC;".into(),
        why: format!(
            "after loading, the biggest node should hold about {} of the data (the hottest-shard estimate) plus its share of the rest",
            pct(hottest)
        ),
    });
    steps
}
