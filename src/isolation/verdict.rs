//! The isolation gate's verdict over its stored demos: per anomaly, the isolation modes
//! under which the latest demo showed it and those that prevented it. Pure (evidence
//! payloads in, one sentence out); it reads nothing and renders no report.

use serde_json::Value;

/// The verdict over demo payloads in capture order (`anomaly`, `mode`, `verdict`; a
/// verdict starting "ANOMALY" means it happened); None when no payload is a demo.
pub fn verdict(payloads: &[&Value]) -> Option<String> {
    let mut latest: Vec<(String, String, bool)> = Vec::new();
    for p in payloads.iter().rev() {
        let (Some(a), Some(m), Some(v)) = (
            p.get("anomaly").and_then(Value::as_str),
            p.get("mode").and_then(Value::as_str),
            p.get("verdict").and_then(Value::as_str),
        ) else {
            continue;
        };
        if !latest.iter().any(|(la, lm, _)| la == a && lm == m) {
            latest.push((a.into(), m.into(), v.starts_with("ANOMALY")));
        }
    }
    if latest.is_empty() {
        return None;
    }
    latest.reverse();
    let mut anomalies: Vec<&str> = latest.iter().map(|(a, _, _)| a.as_str()).collect();
    anomalies.sort();
    anomalies.dedup();
    let modes = |a: &str, happened: bool| {
        let m: Vec<&str> = latest
            .iter()
            .filter(|(la, _, h)| la == a && *h == happened)
            .map(|(_, m, _)| m.as_str())
            .collect();
        if m.is_empty() {
            "none".to_string()
        } else {
            m.join(", ")
        }
    };
    Some(
        anomalies
            .iter()
            .map(|a| {
                format!(
                    "{a} happens under {}; prevented by {}",
                    modes(a, true),
                    modes(a, false)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod unit {
    use super::verdict;
    use serde_json::json;

    #[test]
    fn names_the_modes_per_anomaly() {
        let p = |a: &str, m: &str, v: &str| json!({"anomaly": a, "mode": m, "verdict": v});
        let payloads = [
            p("lost_update", "read committed", "prevented: on_hand is 8"),
            p("lost_update", "read committed", "ANOMALY: on_hand is 9"),
            p("lost_update", "serializable", "prevented by error 40001"),
            p("write_skew", "serializable", "prevented by error 40001"),
        ];
        let refs: Vec<&serde_json::Value> = payloads.iter().collect();
        assert_eq!(
            verdict(&refs).as_deref(),
            Some(
                "lost_update happens under read committed; prevented by serializable; \
                 write_skew happens under none; prevented by serializable"
            )
        );
        assert!(verdict(&[]).is_none());
        assert!(verdict(&[&json!({"summary": "no demo"})]).is_none());
    }
}
