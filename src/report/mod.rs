//! The evidence report: `capstone.report()` renders what every gate stored in
//! `capstone.evidence` as Markdown (claim, captured proof, verdict per gate), and
//! `capstone.report_charts()` renders the charts it links as SVG with their data
//! as CSV. README command (1) writes both into an output directory.

use crate::infra::chart::{Chart, Kind, Series};
use crate::plans::plan::{self, ExplainResult};
use pgrx::prelude::*;
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

/// The evidence a report reads: the reader's own captures, or those of the named roles
/// (row-level security still limits a role that does not bypass it to its own).
fn load_rows(roles: Option<Vec<String>>) -> Vec<Row> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(
            "SELECT id, gate, label, query, to_char(captured_at, 'YYYY-MM-DD HH24:MI:SS TZ'), pg_version, payload::text,
                    captured_by::text
               FROM capstone.evidence
              WHERE CASE WHEN $1::text[] IS NULL THEN captured_by = current_user
                         ELSE captured_by::text = ANY ($1::text[]) END
              ORDER BY id",
            None,
            &[roles.into()],
        )? {
            out.push(Row {
                id: r.get::<i64>(1)?.unwrap_or(0),
                gate: r.get::<String>(2)?.unwrap_or_default(),
                label: r.get::<String>(3)?,
                query: r.get::<String>(4)?,
                captured_at: r.get::<String>(5)?.unwrap_or_default(),
                pg_version: r.get::<String>(6)?.unwrap_or_default(),
                payload: match r.get::<String>(7)? {
                    None => Value::Null,
                    // one unreadable row is reported as such, never takes the report down
                    Some(t) => crate::infra::json::parse_deep(&t).unwrap_or_else(|e| {
                        serde_json::json!({"summary": format!("(payload not readable: {e})")})
                    }),
                },
                captured_by: r.get::<String>(8)?.unwrap_or_default(),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_default()
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

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(|x| x.as_f64())
}

fn text(v: &Value, k: &str) -> String {
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

fn render_gaps(o: &mut String, caps: &[&Row]) -> usize {
    let mut flagged_total = 0;
    for r in caps {
        let Some(p) = r
            .payload
            .get("plan")
            .and_then(|p| plan::parse_explain_value(p).ok())
        else {
            continue;
        };
        let gaps = plan::estimate_gaps(&p, crate::infra::gucs::gap_threshold());
        let flagged = gaps.iter().filter(|g| g.flagged).count();
        flagged_total += flagged;
        let _ = writeln!(
            o,
            "\n**{}** (evidence {}): {} node(s) at or above q-error {}\n\n| node | est rows | actual rows | q-error | root cause |\n|---|---:|---:|---:|---|",
            r.label.as_deref().unwrap_or("capture"),
            r.id,
            flagged,
            crate::infra::gucs::gap_threshold()
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

/// Charts: the index proofs' before/after times, plus any chart a gate stored.
pub fn charts(rows: &[Row]) -> Vec<(String, Chart)> {
    let mut out = Vec::new();
    let diffs: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            matches!(r.gate.as_str(), "index" | "statistics") && r.payload.get("diff").is_some()
        })
        .collect();
    if !diffs.is_empty() {
        let mut cats = Vec::new();
        let mut before = Vec::new();
        let mut after = Vec::new();
        for (i, r) in diffs.iter().enumerate() {
            let stmt = r
                .payload
                .get("diff")
                .and_then(|d| d.as_array())
                .and_then(|d| d.iter().find(|x| text(x, "kind") == "statement").cloned());
            cats.push(r.label.clone().unwrap_or_else(|| format!("proof {}", r.id)));
            before.push((
                i as f64,
                stmt.as_ref()
                    .and_then(|s| num(s, "before_ms"))
                    .unwrap_or(f64::NAN),
            ));
            after.push((
                i as f64,
                stmt.as_ref()
                    .and_then(|s| num(s, "after_ms"))
                    .unwrap_or(f64::NAN),
            ));
        }
        out.push((
            "index_proofs".to_string(),
            Chart {
                title: "Each proof: query time before and after the change".into(),
                kind: Kind::Bar,
                x_label: "proof (explain_diff label)".into(),
                y_label: "actual time, ms".into(),
                categories: cats,
                series: vec![
                    Series {
                        name: "before".into(),
                        points: before,
                    },
                    Series {
                        name: "after".into(),
                        points: after,
                    },
                ],
                log_y: true,
            },
        ));
    }
    for r in rows {
        if let Some(c) = r
            .payload
            .get("chart")
            .and_then(|c| serde_json::from_value::<Chart>(c.clone()).ok())
        {
            let name = format!("{}_{}", r.gate, r.id);
            out.push((name, c));
        }
        // a capture with more than one chart lists the others under "charts"
        for (k, c) in r
            .payload
            .get("charts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Ok(c) = serde_json::from_value::<Chart>(c.clone()) {
                out.push((format!("{}_{}_{}", r.gate, r.id, k + 2), c));
            }
        }
    }
    out
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
pub fn render(rows: Vec<Row>, reader: &str) -> String {
    let groups = by_role(rows, reader);
    let mut o = render_head();
    if !groups.iter().any(|(who, _)| who == reader) {
        render_body(&mut o, &[], "", None);
    }
    for (who, rows) in &groups {
        if who == reader {
            render_body(&mut o, rows, "", None);
        } else {
            let _ = writeln!(
                o,
                "\n# Evidence captured by role `{who}`\n\nEverything in this part was captured by `{who}`, not by `{reader}`.\n"
            );
            render_body(&mut o, rows, &chart_prefix(who, reader), Some(who));
        }
    }
    render_triage(&mut o);
    o
}

fn render_head() -> String {
    let mut o = String::new();
    let version = Spi::get_one::<String>("SELECT current_setting('server_version')")
        .ok()
        .flatten()
        .unwrap_or_default();
    let db = Spi::get_one::<String>("SELECT current_database()::text")
        .ok()
        .flatten()
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "# capstone evidence report\n\nDatabase `{db}` on PostgreSQL {version}, capstone {}. Every number below was measured on this server and stored in `capstone.evidence`; nothing is hand-written.\n",
        env!("CARGO_PKG_VERSION")
    );
    o
}

fn render_body(o: &mut String, rows: &[Row], prefix: &str, by: Option<&str>) {
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
                let flagged = render_gaps(&mut s, &caps);
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
                if let Some(d) = isolation_verdict(&mine) {
                    verdicts = vec![d];
                }
            }
            if *gate == "sharding" {
                if let Some(d) = shard_decision(&mine) {
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

fn render_triage(o: &mut String) {
    // the live on-call view closes the report
    let _ = writeln!(o, "\n## Triage (live, at report time)\n\n| mode | severity | finding | first fix |\n|---|---|---|---|");
    for f in crate::triage::run_triage(500) {
        let _ = writeln!(
            o,
            "| {} | {} | {} | `{}` |",
            f.mode,
            f.severity.as_str(),
            md_cell(&f.finding),
            md_cell(&f.first_fix)
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The latest sharding capture whose label starts with `prefix`.
fn latest<'a>(rows: &[&'a Row], prefix: &str) -> Option<&'a Row> {
    rows.iter()
        .rev()
        .copied()
        .find(|r| r.label.as_deref().is_some_and(|l| l.starts_with(prefix)))
}

/// Per anomaly, the modes under which the latest demo showed it and those that prevented it.
pub fn isolation_verdict(rows: &[&Row]) -> Option<String> {
    let mut latest: Vec<(String, String, bool)> = Vec::new();
    for r in rows.iter().rev() {
        let (Some(a), Some(m), Some(v)) = (
            r.payload.get("anomaly").and_then(Value::as_str),
            r.payload.get("mode").and_then(Value::as_str),
            r.payload.get("verdict").and_then(Value::as_str),
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

/// Share of the single-node ceiling at which the decision flips to "shard".
const SHARD_AT: f64 = 0.7;

/// The shard-or-not decision from the ceiling, the 2-node run and the key ranking.
pub fn shard_decision(rows: &[&Row]) -> Option<String> {
    let ceiling = latest(rows, "ceiling: place_order client ramp");
    let two = latest(rows, "two nodes:");
    let advice = latest(rows, "shard_advice:");
    let mut parts = Vec::new();
    if let Some(c) = ceiling.and_then(|r| num(&r.payload, "ceiling_tps")) {
        let flip = SHARD_AT * c;
        match ceiling.and_then(|r| num(&r.payload, "demand_tps")) {
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
    if let Some(r) = two.and_then(|r| num(&r.payload, "write_ratio")) {
        parts.push(format!(
            "the 2-node layout wrote {r:.2}× of the same partitioning on one node"
        ));
    }
    if let Some(v) = advice
        .and_then(|r| r.payload.get("verdict"))
        .and_then(Value::as_str)
    {
        parts.push(format!("if sharded: {v}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The evidence report as Markdown: per gate, the claim, the captured proof and the verdict.
/// Only the reader's own evidence unless `roles` names others; each other role's
/// evidence is a part of its own that says whose it is.
#[pg_extern(volatile, parallel_unsafe)]
fn report(roles: default!(Option<Vec<String>>, "NULL")) -> String {
    render(load_rows(roles), &crate::infra::owner::caller())
}

/// The report's charts: file name, title, SVG and the CSV of its data, and whose
/// evidence they draw (the same `roles` as `report`).
#[pg_extern(volatile, parallel_unsafe)]
fn report_charts(
    roles: default!(Option<Vec<String>>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(file_name, String),
        name!(title, String),
        name!(svg, String),
        name!(csv, String),
        name!(captured_by, String),
    ),
> {
    let reader = crate::infra::owner::caller();
    let mut out = Vec::new();
    for (who, rows) in by_role(load_rows(roles), &reader) {
        let prefix = chart_prefix(&who, &reader);
        for (n, c) in charts(&rows) {
            out.push((
                format!("{prefix}{n}"),
                c.title.clone(),
                c.svg(),
                c.csv(),
                who.clone(),
            ));
        }
    }
    TableIterator::new(out)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[test]
    fn isolation_verdict_names_the_modes_per_anomaly() {
        use serde_json::json;
        let row = |id: i64, a: &str, m: &str, v: &str| super::Row {
            id,
            gate: "isolation".into(),
            label: None,
            query: None,
            captured_at: String::new(),
            pg_version: String::new(),
            payload: json!({"anomaly": a, "mode": m, "verdict": v}),
            captured_by: String::new(),
        };
        let rows = [
            row(
                1,
                "lost_update",
                "read committed",
                "prevented: on_hand is 8",
            ),
            row(2, "lost_update", "read committed", "ANOMALY: on_hand is 9"),
            row(3, "lost_update", "serializable", "prevented by error 40001"),
            row(4, "write_skew", "serializable", "prevented by error 40001"),
        ];
        let refs: Vec<&super::Row> = rows.iter().collect();
        assert_eq!(
            super::isolation_verdict(&refs).unwrap(),
            "lost_update happens under read committed; prevented by serializable; \
             write_skew happens under none; prevented by serializable"
        );
        assert!(super::isolation_verdict(&[]).is_none());
    }

    #[test]
    fn shard_decision_flips_at_seventy_percent_of_the_ceiling() {
        use serde_json::json;
        let row = |label: &str, payload: serde_json::Value| super::Row {
            id: 1,
            gate: "sharding".into(),
            label: Some(label.into()),
            query: None,
            captured_at: String::new(),
            pg_version: String::new(),
            payload,
            captured_by: String::new(),
        };
        let busy = row(
            "ceiling: place_order client ramp",
            json!({"ceiling_tps": 1000.0, "demand_tps": 800.0}),
        );
        let d = super::shard_decision(&[&busy]).unwrap();
        assert!(d.starts_with("shard, once"), "{d}");
        let quiet = row(
            "ceiling: place_order client ramp",
            json!({"ceiling_tps": 1000.0, "demand_tps": 10.0}),
        );
        let two = row("two nodes: x", json!({"write_ratio": 0.69}));
        let d = super::shard_decision(&[&quiet, &two]).unwrap();
        assert!(
            d.starts_with("do not shard") && d.contains("700/s") && d.contains("0.69×"),
            "{d}"
        );
        // the latest capture wins
        let d = super::shard_decision(&[&quiet, &busy]).unwrap();
        assert!(d.starts_with("shard, once"), "{d}");
        assert!(super::shard_decision(&[]).is_none());
    }

    #[pg_test]
    fn report_without_evidence_names_every_gate() {
        let md = Spi::get_one::<String>("SELECT capstone.report()")
            .unwrap()
            .unwrap();
        for gate in [
            "Schema",
            "Index",
            "Statistics",
            "Isolation",
            "Pooling",
            "Migration",
            "Sharding",
            "Bloat",
        ] {
            assert!(md.contains(&format!("## {gate}")), "missing section {gate}");
        }
        assert!(md.contains("No evidence yet"));
        assert!(md.contains("## Triage"));
    }

    #[pg_test]
    fn seeded_evidence_renders_sections_and_charts() {
        // one real before/after proof, and one stored capture per gate, with the five
        // charts the report promises: bloat over the scenario, backfill progress, the
        // storm, the TPS ceiling and single node vs 2-node
        Spi::run(
            "CREATE TABLE t_rep AS SELECT g AS id FROM generate_series(1, 20000) g; ANALYZE t_rep;
             SELECT * FROM capstone.explain_diff('SELECT * FROM t_rep WHERE id = 7',
                 'CREATE INDEX t_rep_id ON t_rep (id); ANALYZE t_rep', label => 'index proof: t_rep_id');
             SELECT * FROM capstone.estimate_gap('SELECT * FROM t_rep WHERE id < 100', label => 'gap: t_rep');",
        )
        .unwrap();
        let chart = |title: &str| {
            format!(
                r#"{{"title": "{title}", "kind": "line", "x_label": "x", "y_label": "y",
                    "series": [{{"name": "a", "points": [[0, 1], [1, 2], [2, 4]]}}]}}"#
            )
        };
        let seeds = [
            (
                "schema",
                "lab install",
                r#""verdict": "lab loaded""#.to_string(),
            ),
            (
                "isolation",
                "lost_update under read_committed",
                r#""verdict": "anomaly reproduced""#.into(),
            ),
            (
                "pooling",
                "storm",
                format!(
                    r#""verdict": "pooled storm absorbed", "chart": {}, "charts": [{}]"#,
                    chart("pool-size sweep"),
                    chart("storm latency and errors")
                ),
            ),
            (
                "migration",
                "backfill progress",
                format!(
                    r#""verdict": "backfill done", "chart": {}"#,
                    chart("backfill rows/s")
                ),
            ),
            (
                "bloat",
                "bloat scenario 1: finish",
                format!(
                    r#""verdict": "dead tuples kept while held", "chart": {}"#,
                    chart("table size and dead tuples")
                ),
            ),
            (
                "sharding",
                "shard_advice: shop",
                r#""verdict": "shard key tenant_id (score 88 of 100)""#.into(),
            ),
            (
                "reliability",
                "load: read-side functions under 50 clients",
                r#""verdict": "0 errors in 9641 calls""#.into(),
            ),
            (
                "sharding",
                "ceiling: place_order client ramp",
                format!(
                    r#""verdict": "write ceiling 750 TPS", "ceiling_tps": 750, "demand_tps": 0.26, "chart": {}"#,
                    chart("TPS ceiling")
                ),
            ),
            (
                "sharding",
                "two nodes: postgres_fdw hash partitions by tenant_id",
                format!(
                    r#""verdict": "2-node 0.69x", "write_ratio": 0.69, "chart": {}"#,
                    chart("single node vs 2-node")
                ),
            ),
        ];
        for (gate, label, body) in &seeds {
            Spi::run_with_args(
                "INSERT INTO capstone.evidence (gate, label, payload) VALUES ($1, $2, $3::jsonb)",
                &[
                    (*gate).into(),
                    (*label).into(),
                    format!(r#"{{"summary": "seeded {label}", {body}}}"#).into(),
                ],
            )
            .unwrap();
        }
        let md = Spi::get_one::<String>("SELECT capstone.report()")
            .unwrap()
            .unwrap();
        // every gate has a section with a verdict other than "no evidence yet"
        for (gate, _, _) in super::GATES {
            let head = format!("## {}", super::capitalize(gate));
            let at = md
                .find(&head)
                .unwrap_or_else(|| panic!("missing section {head}"));
            let section = &md[at..];
            let section = &section[..section[3..]
                .find("\n## ")
                .map(|i| i + 3)
                .unwrap_or(section.len())];
            assert!(section.contains("**Verdict.**"), "{gate}: no verdict");
            if *gate != "plans" {
                assert!(
                    !section.contains("No evidence yet"),
                    "{gate}: evidence not rendered"
                );
            }
        }
        assert!(md.contains("index proof: t_rep_id"));
        assert!(md.contains("Seq Scan"));
        assert!(md.contains("pooled storm absorbed"));
        assert!(md.contains("do not shard: peak demand 0.26/s"), "{md}");
        assert!(md.contains("wrote 0.69× of the same partitioning"));
        // every chart: linked from the report, an SVG with axes, and its data as CSV
        let charts = Spi::connect(|c| {
            c.select(
                "SELECT file_name, svg, csv FROM capstone.report_charts()",
                None,
                &[],
            )
            .unwrap()
            .map(|r| {
                (
                    r.get::<String>(1).unwrap().unwrap(),
                    r.get::<String>(2).unwrap().unwrap_or_default(),
                    r.get::<String>(3).unwrap().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
        });
        assert_eq!(charts.len(), 7, "index proofs + six gate charts");
        for (name, svg, csv) in &charts {
            assert!(
                md.contains(&format!("charts/{name}.svg")),
                "{name} not linked"
            );
            assert!(svg.len() > 500 && svg.contains("<svg"), "{name}: empty svg");
            assert!(
                csv.starts_with("series,x,y") && csv.lines().count() > 1,
                "{name}: empty csv"
            );
        }
        for title in [
            "storm latency",
            "pool-size sweep",
            "backfill rows/s",
            "table size and dead tuples",
            "TPS ceiling",
            "single node vs 2-node",
        ] {
            assert!(
                charts.iter().any(|(_, svg, _)| svg.contains(title)),
                "chart {title} missing"
            );
        }
    }
}
