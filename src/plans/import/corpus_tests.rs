//! The plan corpus of `pg_test/plans/` (captured on PG15, 16, 17 and 18 by its capture.sh):
//! every plan in text and JSON gives the same analysis row for row, YAML and XML agree
//! with JSON, auto_explain logs split into their entries, the text reader's tree survives
//! a round trip through the stored JSON, and no mangled paste makes anything panic.

use super::{emit, import, Format};
use crate::plans::gaps::estimate_gaps;
use crate::plans::parse::parse_explain_value;
use crate::plans::tips::plan_tips;
use crate::plans::tree::ExplainResult;
use proptest::prelude::*;

macro_rules! corpus {
    ($($name:ident),* $(,)?) => {
        &[$(
            (stringify!($name), 15, include_str!(concat!("../../../pg_test/plans/pg15/", stringify!($name), ".txt")),
             include_str!(concat!("../../../pg_test/plans/pg15/", stringify!($name), ".json"))),
            (stringify!($name), 16, include_str!(concat!("../../../pg_test/plans/pg16/", stringify!($name), ".txt")),
             include_str!(concat!("../../../pg_test/plans/pg16/", stringify!($name), ".json"))),
            (stringify!($name), 17, include_str!(concat!("../../../pg_test/plans/pg17/", stringify!($name), ".txt")),
             include_str!(concat!("../../../pg_test/plans/pg17/", stringify!($name), ".json"))),
            (stringify!($name), 18, include_str!(concat!("../../../pg_test/plans/pg18/", stringify!($name), ".txt")),
             include_str!(concat!("../../../pg_test/plans/pg18/", stringify!($name), ".json"))),
        )*]
    };
}

/// (name, major, text, json)
pub(super) const CORPUS: &[(&str, u32, &str, &str)] = corpus!(
    seq_filter,
    misestimate,
    parallel,
    not_launched,
    partitioned,
    cte,
    initplan_subplan,
    memoize,
    incremental_sort,
    merge,
    disk_sort,
    hash_batches,
    hashagg_spill,
    lossy_bitmap,
    heap_fetches,
    nestloop,
    never_executed,
    trigger,
    verbose_join,
    large_union,
);

const MARKUP: &[(&str, &str, &str)] = &[
    (
        "seq_filter 15",
        include_str!("../../../pg_test/plans/pg15/seq_filter.yaml"),
        include_str!("../../../pg_test/plans/pg15/seq_filter.xml"),
    ),
    (
        "cte 15",
        include_str!("../../../pg_test/plans/pg15/cte.yaml"),
        include_str!("../../../pg_test/plans/pg15/cte.xml"),
    ),
    (
        "seq_filter 16",
        include_str!("../../../pg_test/plans/pg16/seq_filter.yaml"),
        include_str!("../../../pg_test/plans/pg16/seq_filter.xml"),
    ),
    (
        "initplan_subplan 17",
        include_str!("../../../pg_test/plans/pg17/initplan_subplan.yaml"),
        include_str!("../../../pg_test/plans/pg17/initplan_subplan.xml"),
    ),
    (
        "initplan_subplan 18",
        include_str!("../../../pg_test/plans/pg18/initplan_subplan.yaml"),
        include_str!("../../../pg_test/plans/pg18/initplan_subplan.xml"),
    ),
];

const LOGS: &[&str] = &[
    include_str!("../../../pg_test/plans/pg15/auto_explain_text.log"),
    include_str!("../../../pg_test/plans/pg15/auto_explain_json.log"),
    include_str!("../../../pg_test/plans/pg16/auto_explain_text.log"),
    include_str!("../../../pg_test/plans/pg16/auto_explain_json.log"),
    include_str!("../../../pg_test/plans/pg17/auto_explain_text.log"),
    include_str!("../../../pg_test/plans/pg17/auto_explain_json.log"),
    include_str!("../../../pg_test/plans/pg18/auto_explain_text.log"),
    include_str!("../../../pg_test/plans/pg18/auto_explain_json.log"),
];

/// Parallel plans: per-worker row splits differ between two runs of the same query, so
/// their actual rows are compared as totals within the rounding of per-loop averages.
fn parallel(name: &str) -> bool {
    matches!(name, "parallel" | "not_launched")
}

fn one(src: &str, what: &str) -> ExplainResult {
    let r = import(src);
    assert!(r.is_ok(), "{what}: {:?}", r.as_ref().err());
    let plans = r.map(|i| i.plans).unwrap_or_default();
    assert_eq!(plans.len(), 1, "{what}");
    plans
        .into_iter()
        .next()
        .map(|p| p.parsed)
        .unwrap_or_default()
}

/// What estimate_gap shows, without the measured actuals when `with_actuals` is false.
type GapKey = (
    usize,
    usize,
    String,
    Option<String>,
    String,
    Option<String>,
    bool,
    bool,
);
fn gap_key(p: &ExplainResult, with_actuals: bool) -> Vec<GapKey> {
    estimate_gaps(p, 10.0)
        .into_iter()
        .map(|g| {
            (
                g.id,
                g.depth,
                g.node,
                g.relation,
                format!("{:.2}", g.est_rows),
                with_actuals.then(|| {
                    format!(
                        "{:.2} {:?} {:?}",
                        g.actual_rows.unwrap_or(-1.0),
                        g.loops,
                        g.q_error.map(|q| format!("{q:.2}"))
                    )
                }),
                g.flagged && with_actuals,
                g.cut_short,
            )
        })
        .collect()
}

fn tip_key(p: &ExplainResult) -> Vec<(Option<usize>, String, &'static str, String)> {
    let mut t: Vec<_> = plan_tips(p, 10.0)
        .into_iter()
        .map(|t| (t.node_id, t.node, t.finding, t.first_fix))
        .collect();
    t.sort();
    t
}

#[test]
fn text_and_json_give_the_same_analysis_row_for_row() {
    for (name, v, text, json) in CORPUS {
        let what = format!("{name} pg{v}");
        let t = one(text, &what);
        let j = one(json, &what);
        assert!(t.node_count() > 0);
        assert_eq!(t.node_count(), j.node_count(), "{what}");
        let exact = !parallel(name);
        assert_eq!(gap_key(&t, exact), gap_key(&j, exact), "{what}");
        if exact {
            assert_eq!(tip_key(&t), tip_key(&j), "{what}");
        }
        assert_eq!(t.settings, j.settings, "{what}");
        assert_eq!(t.triggers.len(), j.triggers.len(), "{what}");
        assert_eq!(
            t.execution_time.is_some(),
            j.execution_time.is_some(),
            "{what}"
        );
    }
}

/// Per node, its workers and which of their figures are there: (number, actual rows,
/// buffers, sort method and space type, hash-aggregate batches). The figures themselves
/// differ between the text and the JSON run.
type WorkerKey = (i64, bool, bool, Option<String>, Option<String>, Option<i64>);
fn worker_key(p: &ExplainResult) -> Vec<Vec<WorkerKey>> {
    crate::plans::flatten::flatten(p)
        .iter()
        .map(|f| {
            f.node
                .workers
                .iter()
                .map(|w| {
                    (
                        w.worker_number,
                        w.actual_rows.is_some(),
                        w.shared_hit.is_some(),
                        w.sort_method.clone(),
                        w.sort_space_type.clone(),
                        w.hashagg_batches,
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn text_and_json_give_the_same_workers() {
    let mut verbose_workers = 0;
    for (name, v, text, json) in CORPUS {
        let (t, j) = (one(text, name), one(json, name));
        assert_eq!(worker_key(&t), worker_key(&j), "{name} pg{v}");
        if *name == "verbose_join" {
            verbose_workers += worker_key(&t)
                .iter()
                .flatten()
                .filter(|w| w.1 && w.2)
                .count();
        }
        if *name == "parallel" {
            assert!(
                worker_key(&t).iter().flatten().any(|w| w.3.is_some()),
                "pg{v}: per-worker sort lines"
            );
        }
    }
    assert!(
        verbose_workers >= 4 * 5,
        "VERBOSE gives every worker's figures"
    );
}

#[test]
fn findings_the_corpus_was_built_to_show_are_found() {
    for (name, finding) in [
        ("seq_filter", "missing index"),
        ("misestimate", "row estimate"),
        ("disk_sort", "sort on disk"),
        ("hash_batches", "hash batches"),
        ("lossy_bitmap", "lossy bitmap"),
        ("heap_fetches", "heap fetches"),
        ("nestloop", "nested loop"),
        ("not_launched", "workers not launched"),
    ] {
        for (n, v, text, _) in CORPUS.iter().filter(|c| c.0 == name) {
            let tips = plan_tips(&one(text, n), 10.0);
            assert!(
                tips.iter().any(|t| t.finding == finding),
                "{n} pg{v}: no {finding} in {tips:?}"
            );
        }
    }
}

#[test]
fn the_large_plan_has_over_a_thousand_nodes() {
    for (name, v, text, _) in CORPUS.iter().filter(|c| c.0 == "large_union") {
        assert!(one(text, name).node_count() > 1000, "pg{v}");
    }
}

#[test]
fn text_plans_survive_the_round_trip_through_stored_json() {
    for (name, v, text, _) in CORPUS {
        let t = one(text, name);
        let back = parse_explain_value(&emit::to_explain_json(&t));
        assert_eq!(back.as_ref().ok(), Some(&t), "{name} pg{v}");
    }
}

#[test]
fn every_plan_reads_back_from_what_is_stored() {
    let mut sources: Vec<&str> = CORPUS.iter().flat_map(|c| [c.2, c.3]).collect();
    sources.extend(LOGS.iter().copied());
    sources.extend(MARKUP.iter().flat_map(|m| [m.1, m.2]));
    for src in sources {
        let r = import(src);
        assert!(r.is_ok(), "{:?}", r.as_ref().err());
        let Ok(i) = r else { continue };
        for p in &i.plans {
            let back = super::stored(&p.stored, p.stored_format.as_str());
            assert_eq!(
                back.as_ref().ok(),
                Some(&p.parsed),
                "{:?}",
                back.as_ref().err()
            );
        }
    }
}

#[test]
fn json_plans_are_stored_as_text() {
    for (name, v, _, json) in CORPUS {
        let r = import(json);
        let f = r
            .ok()
            .and_then(|i| i.plans.first().map(|p| p.stored_format));
        assert_eq!(f, Some(Format::Text), "{name} pg{v}");
    }
}

#[test]
fn yaml_and_xml_agree_with_json() {
    for (what, yaml, xml) in MARKUP {
        let (name, v) = what.split_once(' ').unwrap_or((what, "15"));
        let json = CORPUS
            .iter()
            .find(|c| c.0 == name && c.1.to_string() == v)
            .map(|c| c.3)
            .unwrap_or("");
        let j = one(json, what);
        for (src, f) in [(yaml, Format::Yaml), (xml, Format::Xml)] {
            let r = import(src);
            assert!(
                r.as_ref().is_ok_and(|i| i.format == f),
                "{what} {f:?}: {:?}",
                r.as_ref().err()
            );
            let p = one(src, what);
            assert_eq!(gap_key(&p, false), gap_key(&j, false), "{what} {f:?}");
        }
    }
}

#[test]
fn auto_explain_logs_give_one_plan_per_entry() {
    for log in LOGS {
        let r = import(log);
        assert!(r.is_ok(), "{:?}", r.as_ref().err());
        let Ok(i) = r else { continue };
        assert_eq!(i.format, Format::AutoExplain);
        assert_eq!(i.plans.len(), 3);
        for p in &i.plans {
            assert!(p.duration_ms.is_some_and(|d| d > 0.0));
            assert!(p
                .parsed
                .query_text
                .as_deref()
                .is_some_and(|q| q.starts_with("SELECT")));
            assert!(p.parsed.node_count() >= 2);
        }
    }
}

fn corpus_texts() -> Vec<&'static str> {
    let mut v: Vec<&str> = CORPUS
        .iter()
        .filter(|c| c.0 != "large_union")
        .flat_map(|c| [c.2, c.3])
        .collect();
    v.extend(LOGS.iter().copied());
    v.extend(MARKUP.iter().flat_map(|m| [m.1, m.2]));
    v
}

/// Importing must end in a plan or a coded error with a line inside the paste.
fn survives(src: &str) {
    match import(src) {
        Ok(i) => {
            for p in &i.plans {
                let _ = estimate_gaps(&p.parsed, 10.0);
                let _ = plan_tips(&p.parsed, 10.0);
                let _ = emit::to_explain_json(&p.parsed);
            }
        }
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= src.split('\n').count().max(1),
                "{e} in {src:?}"
            );
            assert!(!e.expected.is_empty());
        }
    }
}

#[test]
fn every_corpus_plan_truncated_at_every_line_parses_or_errs() {
    for src in corpus_texts() {
        let lines: Vec<&str> = src.split('\n').collect();
        for n in 0..=lines.len() {
            survives(&lines[..n].join("\n"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_deleted_and_mangled_lines_never_panic(pick in 0usize..1000, seed in any::<u64>(), ops in 1usize..6) {
        let texts = corpus_texts();
        let src = texts.get(pick % texts.len()).copied().unwrap_or("");
        let mut lines: Vec<String> = src.split('\n').map(str::to_string).collect();
        let mut s = seed;
        let mut next = |n: usize| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if n == 0 { 0 } else { ((s >> 33) as usize) % n }
        };
        for _ in 0..ops {
            let len = lines.len();
            match next(5) {
                0 if len > 1 => { let (a, b) = (next(len), next(len)); lines.swap(a, b); }
                1 if len > 1 => { lines.remove(next(len)); }
                2 => {
                    let i = next(len);
                    if let Some(l) = lines.get_mut(i) {
                        let cut = next(l.len() + 1);
                        let keep: String = l.chars().take(cut).collect();
                        *l = keep;
                    }
                }
                3 => {
                    let i = next(len);
                    let junk = ["(cost=", "->", "  ->  ", "Buffers: shared hit=x", "(actual time=1..", "InitPlan 1", "Worker 0:", ")", "{", "\"Plan\": [", "- Plan:", "<Plan>", "duration: 1 ms  plan:"];
                    let j = junk.get(next(junk.len())).copied().unwrap_or("");
                    lines.insert(i.min(len), j.to_string());
                }
                _ => {
                    let i = next(len);
                    if let Some(l) = lines.get_mut(i) {
                        *l = format!("{}{}", " ".repeat(next(12)), l.trim_start());
                    }
                }
            }
        }
        survives(&lines.join("\n"));
    }
}
