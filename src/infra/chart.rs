//! Small SVG charts for the evidence report: line charts (a metric over time or
//! load) and grouped bar charts (before/after per item). Pure Rust, no pgrx:
//! a chart is data in, SVG text and CSV text out. Every axis is labelled.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Line,
    Bar,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// (x, y) for line charts; for bar charts x is the index of the category.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    pub kind: Kind,
    pub x_label: String,
    pub y_label: String,
    /// Category names for bar charts (x = 0, 1, 2, ...).
    #[serde(default)]
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    /// Plot y on a log10 scale (for before/after times spanning orders of magnitude).
    #[serde(default)]
    pub log_y: bool,
}

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 90.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// "Nice" tick positions covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut t = start;
    while t <= hi + step * 0.5 && out.len() < 50 {
        out.push(t);
        t += step;
    }
    out
}

impl Chart {
    fn finite_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let ty = |y: f64| if self.log_y { y.max(1e-6).log10() } else { y };
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in self.finite_points() {
            xmin = xmin.min(x);
            xmax = xmax.max(x);
            ymin = ymin.min(ty(y));
            ymax = ymax.max(ty(y));
        }
        let empty = xmin > xmax;
        if empty {
            (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
        }
        if self.kind == Kind::Bar {
            xmin = -0.5;
            xmax = self.categories.len().max(1) as f64 - 0.5;
            if !self.log_y {
                ymin = ymin.min(0.0);
            }
        }
        if !self.log_y && ymin > 0.0 && ymin < ymax * 0.5 {
            ymin = 0.0;
        }
        if (xmax - xmin).abs() < f64::EPSILON {
            xmax = xmin + 1.0;
        }
        if (ymax - ymin).abs() < f64::EPSILON {
            ymax = ymin + 1.0;
        }
        let yt = if self.log_y {
            let lo = ymin.floor();
            let hi = ymax.ceil();
            (ymin, ymax) = (lo, hi);
            (lo as i64..=hi as i64)
                .map(|e| e as f64)
                .collect::<Vec<_>>()
        } else {
            let t = ticks(ymin, ymax, 5);
            ymax = ymax.max(*t.last().unwrap_or(&ymax));
            t
        };
        let sx = |x: f64| LEFT + (x - xmin) / (xmax - xmin) * pw;
        let sy = |y: f64| TOP + ph - (y - ymin) / (ymax - ymin) * ph;

        let mut o = String::new();
        o.push_str(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        ));
        o.push_str(&format!(
            "<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n"
        ));
        o.push_str(&format!(
            "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
            W / 2.0,
            esc(&self.title)
        ));
        // y grid and ticks
        for t in &yt {
            let y = sy(*t);
            let label = if self.log_y {
                fmt_num(10f64.powf(*t))
            } else {
                fmt_num(*t)
            };
            o.push_str(&format!(
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                label
            ));
        }
        // axes
        o.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
            TOP + ph,
            LEFT + pw,
            TOP + ph,
            TOP + ph
        ));
        // x ticks
        match self.kind {
            Kind::Bar => {
                for (i, c) in self.categories.iter().enumerate() {
                    let x = sx(i as f64);
                    o.push_str(&format!(
                        "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-25 {x:.1} {:.1})\">{}</text>\n",
                        TOP + ph + 16.0,
                        TOP + ph + 16.0,
                        esc(c)
                    ));
                }
            }
            Kind::Line => {
                for t in ticks(xmin, xmax, 6) {
                    if t < xmin - 1e-9 || t > xmax + 1e-9 {
                        continue;
                    }
                    let x = sx(t);
                    o.push_str(&format!(
                        "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                        TOP + ph,
                        TOP + ph + 5.0,
                        TOP + ph + 18.0,
                        fmt_num(t)
                    ));
                }
            }
        }
        // axis labels
        o.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            LEFT + pw / 2.0,
            H - 12.0,
            esc(&self.x_label)
        ));
        o.push_str(&format!(
            "<text x=\"18\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {})\">{}</text>\n",
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&format!("{}{}", self.y_label, if self.log_y { " (log scale)" } else { "" }))
        ));
        // data
        let n = self.series.len().max(1) as f64;
        for (si, s) in self.series.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            match self.kind {
                Kind::Line => {
                    let pts: Vec<String> = s
                        .points
                        .iter()
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(ty(*y))))
                        .collect();
                    if !pts.is_empty() {
                        o.push_str(&format!(
                            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
                            pts.join(" ")
                        ));
                    }
                    for (x, y) in s
                        .points
                        .iter()
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                    {
                        o.push_str(&format!(
                            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>\n",
                            sx(*x),
                            sy(ty(*y))
                        ));
                    }
                }
                Kind::Bar => {
                    let slot = pw / (xmax - xmin) * 0.8;
                    let bw = slot / n;
                    for (x, y) in s
                        .points
                        .iter()
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                    {
                        let x0 = sx(*x) - slot / 2.0 + bw * si as f64;
                        let base = sy(if self.log_y { ymin } else { 0f64.max(ymin) });
                        let top = sy(ty(*y));
                        o.push_str(&format!(
                            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>\n",
                            top.min(base),
                            (bw - 1.0).max(1.0),
                            (base - top).abs(),
                            esc(&s.name),
                            fmt_num(*y)
                        ));
                    }
                }
            }
            // legend
            let ly = TOP + 10.0 + 20.0 * si as f64;
            o.push_str(&format!(
                "<rect x=\"{}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\n<text x=\"{}\" y=\"{:.1}\">{}</text>\n",
                LEFT + pw + 15.0,
                ly,
                LEFT + pw + 32.0,
                ly + 10.0,
                esc(&s.name)
            ));
        }
        if empty {
            o.push_str(&format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n",
                LEFT + pw / 2.0,
                TOP + ph / 2.0
            ));
        }
        o.push_str("</svg>\n");
        o
    }

    /// The chart's data as CSV: series,x,y (bar charts use the category as x).
    pub fn csv(&self) -> String {
        let mut o = String::from("series,x,y\n");
        let q = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for s in &self.series {
            for (x, y) in &s.points {
                let xs = match self.kind {
                    Kind::Bar => self
                        .categories
                        .get(*x as usize)
                        .cloned()
                        .unwrap_or_else(|| x.to_string()),
                    Kind::Line => x.to_string(),
                };
                o.push_str(&format!("{},{},{}\n", q(&s.name), q(&xs), y));
            }
        }
        o
    }
}

#[cfg(test)]
mod unit {
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
}
