//! The evidence report's SQL surface: `capstone.report()` renders what every gate stored
//! in `capstone.evidence` as Markdown (claim, captured proof, verdict per gate), and
//! `capstone.report_charts()` renders the charts it links as SVG with their data as CSV.
//! These functions only collect (`collect.rs`) and hand over to the pure renderer
//! (`render.rs`, `charts.rs`); the report may read gates, a gate never reads the report.

mod charts;
mod collect;
pub mod render;

use pgrx::prelude::*;

/// The evidence report as Markdown: per gate, the claim, the captured proof and the verdict.
/// Only the reader's own evidence unless `roles` names others; each other role's
/// evidence is a part of its own that says whose it is.
#[pg_extern(volatile, parallel_unsafe)]
fn report(roles: default!(Option<Vec<String>>, "NULL")) -> String {
    let rows = collect::rows(roles);
    let reader = crate::infra::owner::caller();
    let server = collect::server();
    let triage = collect::triage();
    render::render(rows, &reader, &server, &triage)
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
    for (who, rows) in render::by_role(collect::rows(roles), &reader) {
        let prefix = render::chart_prefix(&who, &reader);
        for (n, c) in charts::charts(&rows) {
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
        for (gate, _, _) in super::render::GATES {
            let head = format!("## {}", super::render::capitalize(gate));
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
