//! What shard_advice stores as evidence for the report: a table of the top
//! candidates, the hottest-shard chart, the summary and the verdict.

use super::score::Advice;
use crate::infra::chart::{Chart, Kind, Series};
use crate::infra::format::pct_1dp as pct;
use serde_json::{json, Value};

/// The hot values with their share of rows, for lists.
pub fn hot_text(a: &Advice) -> Vec<String> {
    a.hot
        .iter()
        .map(|(v, s)| format!("{v} ({})", pct(*s)))
        .collect()
}

/// Evidence for a ranking: summary, table, chart, verdict.
pub fn store_advice(
    schema: &str,
    shards: &[u32],
    top_n: usize,
    adv: &[Advice],
    workload: bool,
) -> i64 {
    let top: Vec<&Advice> = adv.iter().take(top_n).collect();
    let table: Vec<Value> = top
        .iter()
        .map(|a| {
            let mut o = serde_json::Map::new();
            o.insert("rank".into(), json!(a.rank));
            o.insert("key".into(), json!(a.key));
            o.insert("score".into(), json!((a.score * 10.0).round() / 10.0));
            o.insert("tables".into(), json!(a.columns.len()));
            o.insert("distinct".into(), json!(a.dist.distinct.round()));
            o.insert(
                "top value".into(),
                json!(a
                    .dist
                    .mcv
                    .first()
                    .map(|(v, s)| format!("{v} ({})", pct(*s)))
                    .unwrap_or_default()),
            );
            o.insert("hot keys".into(), json!(hot_text(a).join(", ")));
            o.insert(
                "routable calls".into(),
                json!(a.routable_share.map(pct).unwrap_or_else(|| "n/a".into())),
            );
            for (n, h) in a.shards.iter().zip(&a.hottest) {
                o.insert(format!("hottest @{n}"), json!(pct(*h)));
            }
            o.insert("cross-shard joins".into(), json!(a.cross.len()));
            o.insert("reference tables".into(), json!(a.reference.join(", ")));
            Value::Object(o)
        })
        .collect();
    let mut series: Vec<Series> = top
        .iter()
        .take(4)
        .map(|a| Series {
            name: a.key.clone(),
            points: a
                .shards
                .iter()
                .zip(&a.hottest)
                .map(|(n, h)| (*n as f64, 100.0 * h))
                .collect(),
        })
        .collect();
    series.push(Series {
        name: "fair share 1/N".into(),
        points: shards
            .iter()
            .map(|n| (*n as f64, 100.0 / *n as f64))
            .collect(),
    });
    let chart = Chart {
        title: format!("Hottest shard's share of rows under hash distribution ({schema})"),
        kind: Kind::Line,
        x_label: "shards (N)".into(),
        y_label: "expected hottest shard, % of rows".into(),
        categories: vec![],
        series,
        log_y: true,
    };
    let verdict = match top.first() {
        Some(a) => format!(
            "shard key {} (score {:.0} of 100); hot keys: {}; reference tables: {}",
            a.key,
            a.score,
            if a.hot.is_empty() {
                "none".into()
            } else {
                hot_text(a).join(", ")
            },
            if a.reference.is_empty() {
                "none".into()
            } else {
                a.reference.join(", ")
            }
        ),
        None => "no candidate shard key".into(),
    };
    let summary =
        match top.first() {
            Some(a) => format!(
            "`capstone.shard_advice('{schema}')` ranked {} candidate key(s){}. The first:\n\n{}",
            adv.len(),
            if workload { " with pg_stat_statements" } else { " without workload statistics" },
            a.reasoning
        ),
            None => format!("`capstone.shard_advice('{schema}')` found no candidate key."),
        };
    crate::infra::evidence::store(
        crate::infra::evidence::Gate::Sharding,
        Some(&format!("shard_advice: {schema}")),
        None,
        json!({"schema": schema, "shards": shards, "top_n": top_n}),
        json!({"summary": summary, "table": table, "chart": chart, "verdict": verdict}),
    )
}
