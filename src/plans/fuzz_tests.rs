//! Robustness tests: truncated, byte-replaced and structurally mutated captures, and
//! arbitrary text, run through everything derived from a plan; none may panic.

use super::diff::{diff_plans, plan_shape};
use super::flatten::flatten;
use super::gaps::{estimate_gaps, q_error, Direction};
use super::parse::parse_explain_json;
use super::stats::median;
use super::test_fixtures::*;
use super::tree::ExplainResult;
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Run everything derived from a text; must not panic whatever it is.
fn exercise(text: &str, other: &ExplainResult) {
    let Ok(p) = parse_explain_json(text) else {
        return;
    };
    let flat = flatten(&p);
    for f in &flat {
        let _ = f.label();
        let _ = f.node.total_time_ms();
        let _ = q_error(
            f.node.total_est_rows(),
            f.node.total_actual_rows().unwrap_or(0.0),
        );
    }
    assert_eq!(flat.len(), p.node_count());
    for threshold in [0.0, 1.0, 2.0, f64::NAN, f64::INFINITY] {
        assert_eq!(estimate_gaps(&p, threshold).len(), flat.len());
    }
    let d = diff_plans(&p, &p);
    assert_eq!(d.first().map(|r| r.kind.as_str()), Some("statement"));
    let _ = diff_plans(&p, other);
    let _ = diff_plans(other, &p);
    let _ = plan_shape(&p);
    let mut times: Vec<f64> = flat
        .iter()
        .filter_map(|f| f.node.actual_total_time)
        .collect();
    let _ = median(&mut times);
}

fn reference() -> ExplainResult {
    must_parse(texts("misestimate")[3])
}

/// splitmix64: deterministic choices from a proptest-chosen seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn odd_number(rng: &mut Rng, n: &serde_json::Number) -> Value {
    match rng.below(11) {
        0 => Value::String(n.to_string()),
        1 => Value::Null,
        2 => serde_json::json!(-(n.as_f64().unwrap_or(1.0)) - 1.0),
        3 => serde_json::json!(1e308),
        4 => serde_json::json!(-1e308),
        5 => serde_json::json!(u64::MAX),
        6 => serde_json::json!(i64::MIN),
        7 => serde_json::json!(0),
        8 => Value::String("NaN".into()),
        9 => Value::Bool(true),
        _ => serde_json::json!([]),
    }
}

/// Delete keys, replace numbers, retype strings, shuffle arrays.
fn mutate(v: &mut Value, rng: &mut Rng, rate: u64) {
    match v {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                // Breaking the skeleton ends parsing early; do it rarely so
                // most cases reach the derived functions.
                let skeleton = matches!(k.as_str(), "Plan" | "Plans" | "Node Type");
                let r = if skeleton { rate / 10 } else { rate };
                if rng.below(100) < r {
                    m.remove(&k);
                } else if let Some(child) = m.get_mut(&k) {
                    if skeleton && k == "Node Type" && rng.below(100) >= r {
                        continue;
                    }
                    mutate(child, rng, rate);
                }
            }
        }
        Value::Array(items) => {
            if rng.below(100) < rate {
                items.reverse();
            }
            if rng.below(100) < rate && !items.is_empty() {
                let i = rng.below(items.len() as u64) as usize;
                let copy = items[i].clone();
                items.push(copy);
            }
            for item in items.iter_mut() {
                mutate(item, rng, rate);
            }
        }
        Value::Number(n) if rng.below(100) < rate * 2 => {
            *v = odd_number(rng, n);
        }
        Value::String(_) if rng.below(100) < rate => {
            *v = match rng.below(3) {
                0 => serde_json::json!(42),
                1 => Value::String(String::new()),
                _ => Value::Object(Map::new()),
            };
        }
        _ => {}
    }
}

#[test]
fn most_mutations_still_parse() {
    // Guards the property tests below: they must mostly reach the
    // derived functions, not stop at a parse error.
    let all = all_texts();
    let mut ok = 0;
    let total = 400u64;
    for seed in 0..total {
        let idx = (seed as usize) % all.len();
        let mut v: Value = must_json(all[idx]);
        let mut rng = Rng(seed);
        mutate(&mut v, &mut rng, 1 + seed % 29);
        let text = serde_json::to_string(&v).unwrap_or_default();
        if parse_explain_json(&text).is_ok() {
            ok += 1;
        }
        exercise(&text, &reference());
    }
    assert!(ok * 2 > total, "only {ok}/{total} mutated plans parsed");
}

fn fixture_index() -> impl Strategy<Value = usize> {
    0..FIXTURES.len() * 4
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn truncated_fixtures_never_panic(idx in fixture_index(), frac in 0.0f64..1.0) {
        let all = all_texts();
        let text = all[idx];
        let cut = (text.len() as f64 * frac) as usize;
        let truncated = String::from_utf8_lossy(&text.as_bytes()[..cut.min(text.len())]);
        exercise(&truncated, &reference());
    }

    #[test]
    fn byte_replaced_fixtures_never_panic(
        idx in fixture_index(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..12),
    ) {
        let all = all_texts();
        let mut bytes = all[idx].as_bytes().to_vec();
        for (pos, b) in edits {
            let at = pos % bytes.len();
            bytes[at] = b;
        }
        exercise(&String::from_utf8_lossy(&bytes), &reference());
    }

    #[test]
    fn structurally_mutated_fixtures_never_panic(
        idx in fixture_index(),
        seed in any::<u64>(),
        rate in 1u64..30,
        pretty in any::<bool>(),
    ) {
        let all = all_texts();
        let mut v: Value = must_json(all[idx]);
        let mut rng = Rng(seed);
        mutate(&mut v, &mut rng, rate);
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap_or_default()
        } else {
            serde_json::to_string(&v).unwrap_or_default()
        };
        exercise(&text, &reference());
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        exercise(&s, &reference());
        exercise(&format!("[{{\"Plan\": {{\"Node Type\": \"X\", \"Plans\": [{s}"), &reference());
    }

    #[test]
    fn q_error_is_finite_and_at_least_one(e in any::<f64>(), a in any::<f64>()) {
        let (q, d) = q_error(e, a);
        prop_assert!(q.is_finite() && q >= 1.0);
        prop_assert_eq!(d == Direction::Exact, q == 1.0);
    }

    #[test]
    fn median_lies_between_min_and_max(mut xs in proptest::collection::vec(-1e12f64..1e12, 0..40)) {
        let m = median(&mut xs);
        prop_assert_eq!(m.is_some(), !xs.is_empty());
        if let Some(m) = m {
            prop_assert!(xs[0] <= m && m <= xs[xs.len() - 1]);
        }
    }
}
