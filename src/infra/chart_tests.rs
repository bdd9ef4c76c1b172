//! Unit tests of the SVG charts: layout stays on the canvas, ticks, PNG rendering.

use super::*;

fn line() -> Chart {
    Chart {
        title: "size over time".into(),
        kind: Kind::Line,
        x_label: "seconds".into(),
        y_label: "MB".into(),
        categories: vec![],
        series: vec![Series {
            name: "heap".into(),
            points: vec![(0.0, 10.0), (5.0, 30.0), (9.0, 12.5)],
        }],
        log_y: false,
    }
}

#[test]
fn svg_has_axes_labels_and_data() {
    let svg = line().svg();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains(">seconds</text>"));
    assert!(svg.contains(">MB</text>"));
    assert!(svg.contains("<polyline"));
    assert_eq!(svg.matches("<circle").count(), 3);
}

#[test]
fn bar_chart_and_csv() {
    let c = Chart {
        title: "before/after".into(),
        kind: Kind::Bar,
        x_label: "index".into(),
        y_label: "ms".into(),
        categories: vec!["a_idx".into(), "b,idx".into()],
        series: vec![
            Series {
                name: "before".into(),
                points: vec![(0.0, 50.0), (1.0, 8.0)],
            },
            Series {
                name: "after".into(),
                points: vec![(0.0, 0.1), (1.0, 0.2)],
            },
        ],
        log_y: true,
    };
    let svg = c.svg();
    assert_eq!(svg.matches("<rect x=").count(), 4 + 2); // 4 bars + 2 legend swatches
    assert!(svg.contains("(log scale)"));
    let csv = c.csv();
    assert!(csv.contains("before,a_idx,50"));
    assert!(csv.contains("after,\"b,idx\",0.2"));
}

#[test]
fn empty_and_hostile_input_never_panics() {
    let mut c = line();
    c.series = vec![Series {
        name: "<x>&".into(),
        points: vec![(f64::NAN, f64::INFINITY)],
    }];
    let svg = c.svg();
    assert!(svg.contains("no data"));
    assert!(svg.contains("&lt;x&gt;&amp;"));
    c.series.clear();
    assert!(c.svg().contains("no data"));
}

#[test]
fn ticks_cover_range() {
    let t = ticks(0.0, 97.0, 5);
    assert!(t.first().copied().unwrap_or(1.0) <= 0.0);
    assert!(t.last().copied().unwrap_or(0.0) >= 97.0);
}

/// Every kind of chart the report draws, and the awkward ones.
fn every_kind() -> Vec<(&'static str, Chart)> {
    let bar = |name: &str, cats: Vec<String>, log_y: bool| Chart {
        title: format!("{name}: query time before and after the change"),
        kind: Kind::Bar,
        x_label: "proof (explain_diff label)".into(),
        y_label: "actual time (ms)".into(),
        series: vec![
            Series {
                name: "before".into(),
                points: (0..cats.len())
                    .map(|i| (i as f64, 10.0 + 40.0 * i as f64))
                    .collect(),
            },
            Series {
                name: "after".into(),
                points: (0..cats.len())
                    .map(|i| (i as f64, 0.05 * (i + 1) as f64))
                    .collect(),
            },
        ],
        categories: cats,
        log_y,
    };
    let proofs: Vec<String> = [
        "index proof: orders_tenant_created_idx",
        "index proof: order_lines_order_id_idx",
        "index proof: ledger_entries_account_posted_at_idx",
        "statistics proof: extended statistics on (tenant_id, status)",
        "index proof: customers_email_lower_idx",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let many: Vec<String> = (0..40).map(|i| format!("relation_number_{i}")).collect();
    let mut integer = line();
    integer.title = "Sessions waiting on locks during the watch".into();
    integer.x_label = "time since start (ms)".into();
    integer.y_label = "sessions waiting".into();
    integer.series[0].points = vec![(0.0, 0.0), (100.0, 1.0), (200.0, 2.0), (300.0, 1.0)];
    let mut log_line = line();
    log_line.log_y = true;
    log_line.y_label = "TPS / p99 ms (log scale)".into();
    log_line.series[0].points = vec![(1.0, 0.4), (8.0, 12.0), (64.0, 9000.0)];
    let mut crowded = line();
    crowded.title = "A rather long title for a chart that compares many series over a long run of the lab workload".into();
    crowded.y_label =
        "a long y axis title that says what is measured and in which unit (MB)".into();
    crowded.series = (0..10)
        .map(|i| Series {
            name: format!("series with a long descriptive name number {i}"),
            points: vec![(0.0, i as f64), (1e6, 2e6 * i as f64)],
        })
        .collect();
    let mut empty = line();
    empty.series.clear();
    vec![
        ("line", line()),
        ("line_integer", integer),
        ("line_log", log_line),
        ("line_crowded", crowded),
        ("empty", empty),
        ("bar_index_proofs", bar("index proofs", proofs, true)),
        (
            "bar_short",
            bar("short", vec!["a".into(), "b".into()], false),
        ),
        ("bar_many", bar("many", many, false)),
        ("bar_one_long", bar("one", vec!["x".repeat(200)], false)),
    ]
}

/// A text element: its corners on the canvas, after its rotation.
fn text_boxes(svg: &str) -> Vec<(String, [(f64, f64); 4])> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let at = tag.find(&key)? + key.len();
        let end = tag[at..].find('"')? + at;
        Some(tag[at..end].to_string())
    };
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find("<text ") {
        rest = &rest[at..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        let Some(end) = rest.find("</text>") else {
            break;
        };
        let body = rest[close + 1..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        rest = &rest[end..];
        let num = |n: &str, d: f64| {
            attr(tag, n)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(d)
        };
        let (x, y) = (num("x", 0.0), num("y", 0.0));
        let size = num("font-size", FONT);
        let bold = attr(tag, "font-weight").is_some();
        let w = text_width(&body, size, bold);
        let x0 = match attr(tag, "text-anchor").as_deref() {
            Some("middle") => x - w / 2.0,
            Some("end") => x - w,
            _ => x,
        };
        let (top, bottom) = (y - 0.8 * size, y + 0.25 * size);
        let mut corners = [(x0, top), (x0 + w, top), (x0 + w, bottom), (x0, bottom)];
        if let Some(t) = attr(tag, "transform") {
            let v: Vec<f64> = t
                .trim_start_matches("rotate(")
                .trim_end_matches(')')
                .split(' ')
                .filter_map(|p| p.parse().ok())
                .collect();
            assert_eq!(v.len(), 3, "transform {t}");
            let (a, cx, cy) = (v[0].to_radians(), v[1], v[2]);
            for c in corners.iter_mut() {
                let (dx, dy) = (c.0 - cx, c.1 - cy);
                *c = (
                    cx + dx * a.cos() - dy * a.sin(),
                    cy + dx * a.sin() + dy * a.cos(),
                );
            }
        }
        out.push((body, corners));
    }
    out
}

/// Do two convex quadrilaterals overlap (by more than half a pixel)? Separating axes.
fn overlap(a: &[(f64, f64); 4], b: &[(f64, f64); 4]) -> bool {
    for poly in [a, b] {
        for i in 0..4 {
            let (p, q) = (poly[i], poly[(i + 1) % 4]);
            let axis = (q.1 - p.1, p.0 - q.0);
            let len = (axis.0 * axis.0 + axis.1 * axis.1).sqrt();
            if len == 0.0 {
                continue;
            }
            let proj = |r: &[(f64, f64); 4]| {
                r.iter()
                    .map(|c| (c.0 * axis.0 + c.1 * axis.1) / len)
                    .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
            };
            let (alo, ahi) = proj(a);
            let (blo, bhi) = proj(b);
            if ahi - 0.5 <= blo || bhi - 0.5 <= alo {
                return false;
            }
        }
    }
    true
}

#[test]
fn no_text_leaves_the_canvas_or_overlaps_another() {
    for (name, c) in every_kind() {
        let svg = c.svg();
        let size = |k: &str| {
            let key = format!("{k}=\"");
            svg.find(&key)
                .and_then(|at| svg[at + key.len()..].split('"').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (w, h) = (size("width"), size("height"));
        assert!(w > 0.0 && h > 0.0, "{name}: no size");
        let boxes = text_boxes(&svg);
        assert!(boxes.len() >= 3, "{name}: too few labels");
        for (t, b) in &boxes {
            for (x, y) in b {
                assert!(
                    (0.0..=w).contains(x) && (0.0..=h).contains(y),
                    "{name}: \"{t}\" leaves the {w}x{h} canvas at ({x:.1}, {y:.1})"
                );
            }
        }
        for (i, (t1, b1)) in boxes.iter().enumerate() {
            for (t2, b2) in &boxes[i + 1..] {
                assert!(!overlap(b1, b2), "{name}: \"{t1}\" overlaps \"{t2}\"");
            }
        }
    }
}

#[test]
fn integer_data_gets_integer_ticks() {
    let (t, step) = nice_ticks(0.0, 2.0, 5, true);
    assert_eq!(step, 1.0);
    assert_eq!(fmt_ticks(&t, step), vec!["0", "1", "2"]);
    let (t, step) = nice_ticks(0.0, 2.0, 5, false);
    assert_eq!(fmt_ticks(&t, step)[1], "0.5");
    assert_eq!(
        fmt_ticks(&[0.0, 25000.0, 50000.0], 25000.0),
        vec!["0", "25k", "50k"]
    );
    assert_eq!(
        fmt_ticks(&[0.0, 2.5e6, 5e6], 2.5e6),
        vec!["0", "2.5M", "5.0M"]
    );
    let svg = every_kind()
        .into_iter()
        .find(|(n, _)| *n == "line_integer")
        .map(|(_, c)| c.svg())
        .unwrap_or_default();
    assert!(
        svg.contains(">1</text>") && !svg.contains(">0.5</text>"),
        "{svg}"
    );
}

#[test]
fn every_kind_renders_to_png() {
    let dir = std::env::temp_dir().join(format!("capstone-charts-{}", std::process::id()));
    assert!(std::fs::create_dir_all(&dir).is_ok());
    for (name, c) in every_kind() {
        let svg = dir.join(format!("{name}.svg"));
        let png = dir.join(format!("{name}.png"));
        assert!(std::fs::write(&svg, c.svg()).is_ok());
        let run = std::process::Command::new("rsvg-convert")
            .arg("-o")
            .arg(&png)
            .arg(&svg)
            .output();
        assert!(
            matches!(&run, Ok(o) if o.status.success()),
            "{name}: rsvg-convert failed (install librsvg2-bin): {run:?}"
        );
        assert!(
            std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000),
            "{name}: no PNG"
        );
    }
    if std::env::var_os("CAPSTONE_KEEP_CHARTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
