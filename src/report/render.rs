//! The report's pure renderer: evidence rows (and the server facts and triage rows
//! `collect.rs` gathered) in, Markdown out. No SPI and no pgrx here, so it is
//! unit-tested with hand-built rows; each gate's verdict comes from the gate itself.

use super::charts::charts;
use crate::plans::plan::{self, ExplainResult};
use serde_json::Value;
use std::fmt::Write;

/// One stored capture, as the report reads it.
pub struct Row {
    pub id: i64,
    pub gate: String,
    pub label: Option<String>,
    pub query: Option<String>,
    pub captured_at: String,
    pub pg_version: String,
    pub payload: Value,
    /// the role that captured it
    pub captured_by: String,
}

/// What each gate claims, and how to produce its evidence.
pub const GATES: &[(&str, &str, &str)] = &[
    ("schema", "The lab is modelled for integrity: tenant-scoped composite keys, constraints that bite, one owned denormalization.",
     "SELECT * FROM capstone.lab_install(1); see docs/schema.md"),
    ("index", "Every lab index beyond the primary keys changes its query's plan and lowers its actual time.",
     "SELECT * FROM capstone.explain_diff(query, 'CREATE INDEX ...; ANALYZE ...')"),
    ("statistics", "The planner's worst estimate gap is found, forced into a bad plan, fixed, and the join flips.",
     "SELECT * FROM capstone.estimate_gap(query); then explain_diff with CREATE STATISTICS"),
    ("plans", "Plans are captured with ANALYZE, BUFFERS and SETTINGS as the caller, data changes rolled back.",
     "SELECT * FROM capstone.explain(query)"),
    ("isolation", "A concurrency anomaly is reproduced with two real sessions, then prevented, and the fix's cost measured.",
     "SELECT * FROM capstone.anomaly_demo(...)"),
    ("pooling", "The pool is sized from measured concurrency, and PgBouncer absorbs a connection storm direct connections cannot.",
     "bench/pooling.sh; SELECT * FROM capstone.pool_size()"),
    ("migration", "A breaking change is expanded and contracted with a batched backfill and no session queued behind a table lock.",
     "SELECT capstone.backfill_start(...); capstone.lock_watch(...)"),
    ("sharding", "The single-node ceiling is measured before any shard decision; the key, co-location and hot-shard plan come from the data.",
     "SELECT * FROM capstone.shard_advice('shop')"),
    ("bloat", "Bloat is estimated fast and close to exact, and whoever holds the xmin horizon is named.",
     "SELECT * FROM capstone.bloat_report(); SELECT * FROM capstone.xmin_holders()"),
    ("reliability", "The read-side functions hold up under 50 concurrent clients beside the write load: no error, no memory growth.",
     "bench/load.sh"),
];

/// The server the report describes, and the settings it renders with.
pub struct Server {
    pub database: String,
    pub version: String,
    /// q-error at or above which a plan node counts as misestimated
    pub gap_threshold: f64,
}

/// One live triage finding, as the report's closing table shows it.
pub struct TriageRow {
    pub mode: String,
    pub severity: String,
    pub finding: String,
    pub first_fix: String,
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
        None => "–".into(),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The plan as indented text, one line per node, with estimates and actuals.
pub fn plan_text(p: &ExplainResult) -> String {
    let mut o = String::new();
    let flat = plan::flatten(p);
    for f in &flat {
        let n = f.node;
        let _ = writeln!(
            o,
            "{}{}{}  (est {:.0} rows; actual {} rows x {} loops; {} ms)",
            "  ".repeat(f.depth),
            if f.depth > 0 { "-> " } else { "" },
            n.label(),
            n.plan_rows,
            n.actual_rows
                .map(|r| format!("{r:.0}"))
                .unwrap_or_else(|| "–".into()),
            n.actual_loops
                .map(|r| format!("{r:.0}"))
                .unwrap_or_else(|| "–".into()),
            fmt_ms(plan::wall_time_ms(&flat, f.id)),
        );
    }
    if let Some(t) = p.execution_time {
        let _ = writeln!(o, "Execution time: {t:.3} ms");
    }
    o
}

fn plan_of(rows: &[Row], id: i64) -> Option<ExplainResult> {
    rows.iter()
        .find(|r| r.id == id)
        .and_then(|r| r.payload.get("plan"))
        .and_then(|p| plan::parse_explain_value(p).ok())
}

pub(super) fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(|x| x.as_f64())
}

pub(super) fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
}

/// Index and statistics proofs: rows written by explain_diff(query, change).
fn render_diffs(o: &mut String, rows: &[Row], diffs: &[&Row]) -> (usize, usize) {
    let mut proven = 0;
    let _ = writeln!(
        o,
        "| proof | change | before → after (scan / join) | before ms | after ms | speedup |"
    );
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|");
    for r in diffs {
        let d = r
            .payload
            .get("diff")
            .and_then(|d| d.as_array())
            .cloned()
            .unwrap_or_default();
        let stmt = d.iter().find(|x| text(x, "kind") == "statement");
        let node = d.iter().find(|x| {
            matches!(text(x, "kind").as_str(), "scan" | "join") && !text(x, "change").is_empty()
        });
        let (b, a) = (
            stmt.and_then(|s| num(s, "before_ms")),
            stmt.and_then(|s| num(s, "after_ms")),
        );
        let speed = stmt.and_then(|s| num(s, "speedup"));
        let ops = node
            .map(|n| format!("{} → {}", text(n, "before_op"), text(n, "after_op")))
            .unwrap_or_else(|| "no scan or join change".into());
        if node.is_some() && speed.is_some_and(|s| s > 1.0) {
            proven += 1;
        }
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} | {} | {} |",
            md_cell(r.label.as_deref().unwrap_or("")),
            md_cell(&text(&r.payload, "change")),
            md_cell(&ops),
            fmt_ms(b),
            fmt_ms(a),
            speed
                .map(|s| format!("{s:.1}×"))
                .unwrap_or_else(|| "–".into())
        );
    }
    // the plan text of the most recent proof, before and after
    if let Some(last) = diffs.last() {
        for (side, key) in [("before", "before"), ("after", "after")] {
            if let Some(p) = last
                .payload
                .get(key)
                .and_then(|v| v.as_i64())
                .and_then(|id| plan_of(rows, id))
            {
                let _ = writeln!(
                    o,
                    "\nPlan {side} — {}:\n\n```\n{}```",
                    last.label.as_deref().unwrap_or(""),
                    plan_text(&p)
                );
            }
        }
    }
    (proven, diffs.len())
}

fn render_gaps(o: &mut String, caps: &[&Row], threshold: f64) -> usize {
    let mut flagged_total = 0;
    for r in caps {
        let Some(p) = r
            .payload
            .get("plan")
            .and_then(|p| plan::parse_explain_value(p).ok())
        else {
            continue;
        };
        let gaps = plan::estimate_gaps(&p, threshold);
        let flagged = gaps.iter().filter(|g| g.flagged).count();
        flagged_total += flagged;
        let _ = writeln!(
            o,
            "\n**{}** (evidence {}): {} node(s) at or above q-error {}\n\n| node | est rows | actual rows | q-error | root cause |\n|---|---:|---:|---:|---|",
            r.label.as_deref().unwrap_or("capture"),
            r.id,
            flagged,
            threshold
        );
        for g in &gaps {
            let _ = writeln!(
                o,
                "| {}{} | {:.0} | {} | {} | {} |",
                "· ".repeat(g.depth),
                md_cell(&g.node),
                g.est_rows,
                g.actual_rows
                    .map(|a| format!("{a:.0}"))
                    .unwrap_or_else(|| "–".into()),
                g.q_error
                    .map(|q| format!("{q:.1}"))
                    .unwrap_or_else(|| "–".into()),
                if g.root_cause { "**yes**" } else { "" }
            );
        }
    }
    flagged_total
}

fn render_generic(o: &mut String, caps: &[&Row]) {
    for r in caps {
        let _ = writeln!(
            o,
            "\n**{}** (evidence {}, {}, PostgreSQL {})",
            r.label.as_deref().unwrap_or("capture"),
            r.id,
            r.captured_at,
            r.pg_version
        );
        if let Some(s) = r.payload.get("summary").and_then(|s| s.as_str()) {
            let _ = writeln!(o, "\n{s}");
        }
        if let Some(t) = r.payload.get("table").and_then(|t| t.as_array()) {
            let cols: Vec<String> = t
                .first()
                .and_then(|f| f.as_object())
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if !cols.is_empty() {
                let _ = writeln!(o, "\n| {} |", cols.join(" | "));
                let _ = writeln!(
                    o,
                    "|{}|",
                    cols.iter().map(|_| "---").collect::<Vec<_>>().join("|")
                );
                for row in t.iter().take(200) {
                    let cells: Vec<String> = cols
                        .iter()
                        .map(|c| match row.get(c) {
                            Some(Value::String(s)) => md_cell(s),
                            Some(Value::Null) | None => String::new(),
                            Some(v) => md_cell(&v.to_string()),
                        })
                        .collect();
                    let _ = writeln!(o, "| {} |", cells.join(" | "));
                }
            }
        }
        if let Some(t) = r.payload.get("text").and_then(|t| t.as_str()) {
            let _ = writeln!(o, "\n```\n{}\n```", t.trim_end());
        }
        if let Some(q) = &r.query {
            if r.payload.get("summary").is_none() && r.payload.get("table").is_none() {
                let _ = writeln!(o, "\n```sql\n{}\n```", q.trim());
            }
        }
    }
}

/// The evidence of each role in `rows`, the reader's own first, each as its own group.
pub fn by_role(rows: Vec<Row>, reader: &str) -> Vec<(String, Vec<Row>)> {
    let mut groups: Vec<(String, Vec<Row>)> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|(who, _)| *who == r.captured_by) {
            Some((_, v)) => v.push(r),
            None => groups.push((r.captured_by.clone(), vec![r])),
        }
    }
    groups.sort_by(|a, b| (a.0 != reader, &a.0).cmp(&(b.0 != reader, &b.0)));
    groups
}

/// File-name prefix for the charts of another role's evidence.
pub fn chart_prefix(who: &str, reader: &str) -> String {
    if who == reader {
        String::new()
    } else {
        let safe: String = who
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("by_{safe}__")
    }
}

/// The report: the reader's own evidence, and each other role's (when asked for) in a
/// part of its own that names the role on every section and verdict.
pub fn render(rows: Vec<Row>, reader: &str, server: &Server, triage: &[TriageRow]) -> String {
    let groups = by_role(rows, reader);
    let mut o = render_head(server);
    let threshold = server.gap_threshold;
    if !groups.iter().any(|(who, _)| who == reader) {
        render_body(&mut o, &[], "", None, threshold);
    }
    for (who, rows) in &groups {
        if who == reader {
            render_body(&mut o, rows, "", None, threshold);
        } else {
            let _ = writeln!(
                o,
                "\n# Evidence captured by role `{who}`\n\nEverything in this part was captured by `{who}`, not by `{reader}`.\n"
            );
            render_body(
                &mut o,
                rows,
                &chart_prefix(who, reader),
                Some(who),
                threshold,
            );
        }
    }
    render_triage(&mut o, triage);
    o
}

fn render_head(server: &Server) -> String {
    let mut o = String::new();
    let (db, version) = (&server.database, &server.version);
    let _ = writeln!(
        o,
        "# capstone evidence report\n\nDatabase `{db}` on PostgreSQL {version}, capstone {}. Every number below was measured on this server and stored in `capstone.evidence`; nothing is hand-written.\n",
        env!("CARGO_PKG_VERSION")
    );
    o
}

fn render_body(o: &mut String, rows: &[Row], prefix: &str, by: Option<&str>, threshold: f64) {
    let chart_names: Vec<(String, String)> = charts(rows)
        .into_iter()
        .map(|(n, c)| (n, c.title))
        .collect();
    let _ = writeln!(o, "| gate | captures | verdict |\n|---|---:|---|");
    let mut sections = String::new();
    for (gate, claim, how) in GATES {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.gate == *gate).collect();
        let mut s = String::new();
        match by {
            None => {
                let _ = writeln!(s, "\n## {}\n\n**Claim.** {claim}\n", capitalize(gate));
            }
            Some(who) => {
                let _ = writeln!(
                    s,
                    "\n## {} (captured by `{who}`)\n\n**Claim.** {claim}\n",
                    capitalize(gate)
                );
            }
        }
        let verdict = if mine.is_empty() {
            let _ = writeln!(s, "No evidence yet. Produce it with: `{how}`");
            "no evidence yet".to_string()
        } else {
            let _ = writeln!(s, "**Proof.** {} capture(s).", mine.len());
            let diffs: Vec<&Row> = mine
                .iter()
                .copied()
                .filter(|r| r.payload.get("diff").is_some())
                .collect();
            let caps: Vec<&Row> = mine
                .iter()
                .copied()
                .filter(|r| r.payload.get("plan").is_some())
                .collect();
            let others: Vec<&Row> = mine
                .iter()
                .copied()
                .filter(|r| r.payload.get("diff").is_none() && r.payload.get("plan").is_none())
                .collect();
            let mut verdicts = Vec::new();
            if !diffs.is_empty() {
                let _ = writeln!(s);
                let (proven, total) = render_diffs(&mut s, rows, &diffs);
                verdicts.push(format!(
                    "{proven} of {total} before/after proofs changed the plan and lowered the time"
                ));
            }
            if !caps.is_empty() && *gate != "plans" {
                let flagged = render_gaps(&mut s, &caps, threshold);
                verdicts.push(format!(
                    "{flagged} misestimated node(s) across {} capture(s)",
                    caps.len()
                ));
            } else if !caps.is_empty() {
                let _ = writeln!(
                    s,
                    "\n{} plan capture(s); the latest: {}",
                    caps.len(),
                    caps.last()
                        .and_then(|r| r.label.clone())
                        .unwrap_or_default()
                );
                verdicts.push(format!("{} capture(s)", caps.len()));
            }
            if !others.is_empty() {
                render_generic(&mut s, &others);
                if verdicts.is_empty() {
                    verdicts.push(
                        others
                            .last()
                            .and_then(|r| {
                                r.payload
                                    .get("verdict")
                                    .and_then(|v| v.as_str())
                                    .map(String::from)
                            })
                            .unwrap_or_else(|| format!("{} capture(s)", others.len())),
                    );
                }
            }
            if *gate == "isolation" {
                let payloads: Vec<&Value> = mine.iter().map(|r| &r.payload).collect();
                if let Some(d) = crate::isolation::verdict::verdict(&payloads) {
                    verdicts = vec![d];
                }
            }
            if *gate == "sharding" {
                let captures: Vec<(Option<&str>, &Value)> = mine
                    .iter()
                    .map(|r| (r.label.as_deref(), &r.payload))
                    .collect();
                if let Some(d) = crate::sharding::verdict::decision(&captures) {
                    let _ = writeln!(s, "\n**Shard or not.** {d}.");
                    verdicts = vec![d];
                }
            }
            for (n, t) in chart_names.iter().filter(|(n, _)| {
                n.starts_with(&format!("{gate}_")) || (*gate == "index" && n == "index_proofs")
            }) {
                let _ = writeln!(
                    s,
                    "\n![{t}](charts/{prefix}{n}.svg) ([data](charts/{prefix}{n}.csv))"
                );
            }
            verdicts.join("; ")
        };
        match by {
            None => {
                let _ = writeln!(s, "\n**Verdict.** {verdict}.");
            }
            Some(who) => {
                let _ = writeln!(s, "\n**Verdict (from `{who}`'s evidence).** {verdict}.");
            }
        }
        let _ = writeln!(o, "| {gate} | {} | {} |", mine.len(), md_cell(&verdict));
        sections.push_str(&s);
    }
    o.push_str(&sections);
}

fn render_triage(o: &mut String, triage: &[TriageRow]) {
    // the live on-call view closes the report
    let _ = writeln!(o, "\n## Triage (live, at report time)\n\n| mode | severity | finding | first fix |\n|---|---|---|---|");
    for f in triage {
        let _ = writeln!(
            o,
            "| {} | {} | {} | `{}` |",
            f.mode,
            f.severity,
            md_cell(&f.finding),
            md_cell(&f.first_fix)
        );
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    fn server() -> Server {
        Server {
            database: "shop".into(),
            version: "18.1".into(),
            gap_threshold: 10.0,
        }
    }

    fn row(id: i64, gate: &str, label: &str, by: &str, payload: Value) -> Row {
        Row {
            id,
            gate: gate.into(),
            label: Some(label.into()),
            query: None,
            captured_at: "2026-01-01 00:00:00 UTC".into(),
            pg_version: "18.1".into(),
            payload,
            captured_by: by.into(),
        }
    }

    #[test]
    fn empty_report_names_every_gate_and_closes_with_triage() {
        let triage = [TriageRow {
            mode: "locks".into(),
            severity: "ok".into(),
            finding: "no waits | none".into(),
            first_fix: "SELECT 1".into(),
        }];
        let md = render(vec![], "alice", &server(), &triage);
        assert!(md.starts_with("# capstone evidence report\n\nDatabase `shop` on PostgreSQL 18.1"));
        for (gate, _, how) in GATES {
            assert!(md.contains(&format!("## {}\n", capitalize(gate))), "{gate}");
            assert!(
                md.contains(&format!("| {gate} | 0 | no evidence yet |")),
                "{gate}"
            );
            assert!(md.contains(how), "{gate}");
        }
        assert!(md.contains("## Triage (live, at report time)"));
        assert!(
            md.ends_with("| locks | ok | no waits \\| none | `SELECT 1` |\n"),
            "{md}"
        );
    }

    #[test]
    fn each_gate_verdict_comes_from_its_gate() {
        let rows = vec![
            row(
                1,
                "isolation",
                "demo",
                "alice",
                json!({"anomaly": "lost_update", "mode": "read committed", "verdict": "ANOMALY: 9"}),
            ),
            row(
                2,
                "isolation",
                "demo",
                "alice",
                json!({"anomaly": "lost_update", "mode": "serializable", "verdict": "prevented"}),
            ),
            row(
                3,
                "sharding",
                "ceiling: place_order client ramp",
                "alice",
                json!({"summary": "ramp", "ceiling_tps": 750.0, "demand_tps": 0.26}),
            ),
            row(
                4,
                "bloat",
                "bloat scenario",
                "alice",
                json!({"summary": "held", "verdict": "dead tuples kept while held",
                       "table": [{"relation": "t", "dead": 5}],
                       "chart": {"title": "size", "kind": "line", "x_label": "s", "y_label": "MB",
                                 "series": [{"name": "heap", "points": [[0, 1], [1, 2]]}]}}),
            ),
        ];
        let md = render(rows, "alice", &server(), &[]);
        assert!(md.contains(
            "| isolation | 2 | lost_update happens under read committed; prevented by serializable |"
        ), "{md}");
        assert!(
            md.contains("**Shard or not.** do not shard: peak demand 0.26/s"),
            "{md}"
        );
        assert!(md.contains("| bloat | 1 | dead tuples kept while held |"));
        assert!(
            md.contains("| dead | relation |\n|---|---|\n| 5 | t |"),
            "{md}"
        );
        assert!(md.contains("![size](charts/bloat_4.svg) ([data](charts/bloat_4.csv))"));
    }

    #[test]
    fn another_roles_evidence_is_its_own_part() {
        let rows = vec![row(
            7,
            "schema",
            "lab install",
            "bob",
            json!({"summary": "loaded", "verdict": "lab loaded"}),
        )];
        let md = render(rows, "alice", &server(), &[]);
        // the reader's own (empty) part comes first, then bob's
        let own = md
            .find("| schema | 0 | no evidence yet |")
            .unwrap_or(usize::MAX);
        let bobs = md.find("# Evidence captured by role `bob`").unwrap_or(0);
        assert!(own < bobs, "{md}");
        assert!(md.contains("## Schema (captured by `bob`)"));
        assert!(md.contains("**Verdict (from `bob`'s evidence).** lab loaded."));
        assert_eq!(chart_prefix("bob", "alice"), "by_bob__");
        assert_eq!(chart_prefix("Bob-2", "alice"), "by_bob_2__");
        assert_eq!(chart_prefix("alice", "alice"), "");
    }

    #[test]
    fn index_proofs_are_tabled_and_charted() {
        let diff = json!({"change": "CREATE INDEX i ON t (id)", "diff": [
            {"kind": "statement", "before_ms": 12.5, "after_ms": 0.05, "speedup": 250.0},
            {"kind": "scan", "change": "scan", "before_op": "Seq Scan", "after_op": "Index Scan"}]});
        let rows = vec![row(5, "index", "index proof: i", "alice", diff)];
        let md = render(rows, "alice", &server(), &[]);
        assert!(md.contains(
            "| index proof: i | `CREATE INDEX i ON t (id)` | Seq Scan → Index Scan | 12.50 | 0.050 | 250.0× |"
        ), "{md}");
        assert!(md.contains(
            "| index | 1 | 1 of 1 before/after proofs changed the plan and lowered the time |"
        ));
        assert!(md.contains("(charts/index_proofs.svg)"));
    }
}
