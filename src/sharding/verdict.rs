//! The sharding gate's verdict over its stored evidence: shard or not, from the
//! single-node write ceiling against peak demand, the 2-node run and the key ranking.
//! Pure (labelled evidence payloads in, one sentence out); it reads nothing.

use serde_json::Value;

/// Share of the single-node ceiling at which the decision flips to "shard".
pub const SHARD_AT: f64 = 0.7;

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(|x| x.as_f64())
}

/// The payload of the latest capture whose label starts with `prefix`.
fn latest<'a>(captures: &[(Option<&str>, &'a Value)], prefix: &str) -> Option<&'a Value> {
    captures
        .iter()
        .rev()
        .find(|(l, _)| l.is_some_and(|l| l.starts_with(prefix)))
        .map(|(_, p)| *p)
}

/// The shard-or-not decision over (label, payload) captures in capture order; None
/// when none of them is a ceiling, a 2-node run or a key ranking.
pub fn decision(captures: &[(Option<&str>, &Value)]) -> Option<String> {
    let ceiling = latest(captures, "ceiling: place_order client ramp");
    let two = latest(captures, "two nodes:");
    let advice = latest(captures, "shard_advice:");
    let mut parts = Vec::new();
    if let Some(c) = ceiling.and_then(|p| num(p, "ceiling_tps")) {
        let flip = SHARD_AT * c;
        match ceiling.and_then(|p| num(p, "demand_tps")) {
            Some(d) if d >= flip => parts.push(format!(
                "shard, once the cheaper levers are used: peak demand {d:.1}/s is {:.0}% of the single-node write ceiling {c:.0}/s (the line is {:.0}%)",
                100.0 * d / c,
                100.0 * SHARD_AT
            )),
            Some(d) => parts.push(format!(
                "do not shard: peak demand {d:.2}/s is {:.2}% of the single-node write ceiling {c:.0}/s; the answer flips at {:.0}% of it, {flip:.0}/s",
                100.0 * d / c,
                100.0 * SHARD_AT
            )),
            None => parts.push(format!(
                "single-node write ceiling {c:.0}/s; no demand figure stored: shard only past {flip:.0}/s sustained"
            )),
        }
    }
    if let Some(r) = two.and_then(|p| num(p, "write_ratio")) {
        parts.push(format!(
            "the 2-node layout wrote {r:.2}× of the same partitioning on one node"
        ));
    }
    if let Some(v) = advice
        .and_then(|p| p.get("verdict"))
        .and_then(Value::as_str)
    {
        parts.push(format!("if sharded: {v}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod unit {
    use super::decision;
    use serde_json::json;

    #[test]
    fn flips_at_seventy_percent_of_the_ceiling() {
        let ramp = Some("ceiling: place_order client ramp");
        let busy = json!({"ceiling_tps": 1000.0, "demand_tps": 800.0});
        let d = decision(&[(ramp, &busy)]).unwrap_or_default();
        assert!(d.starts_with("shard, once"), "{d}");
        let quiet = json!({"ceiling_tps": 1000.0, "demand_tps": 10.0});
        let two = json!({"write_ratio": 0.69});
        let d = decision(&[(ramp, &quiet), (Some("two nodes: x"), &two)]).unwrap_or_default();
        assert!(
            d.starts_with("do not shard") && d.contains("700/s") && d.contains("0.69×"),
            "{d}"
        );
        // the latest capture wins
        let d = decision(&[(ramp, &quiet), (ramp, &busy)]).unwrap_or_default();
        assert!(d.starts_with("shard, once"), "{d}");
        assert!(decision(&[]).is_none());
        let advice = json!({"verdict": "shard key tenant_id"});
        assert_eq!(
            decision(&[(Some("shard_advice: shop"), &advice)]).as_deref(),
            Some("if sharded: shard key tenant_id")
        );
    }
}
