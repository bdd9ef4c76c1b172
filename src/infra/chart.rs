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

/// The plot area's smallest size; labels, legend and titles get the room they need around it.
const PLOT_W: f64 = 510.0;
const PLOT_H: f64 = 290.0;
const TOP: f64 = 40.0;
const FONT: f64 = 12.0;
const TITLE_FONT: f64 = 15.0;
/// Category and legend names longer than this are shortened with "…" (the CSV keeps them whole).
const MAX_NAME: usize = 36;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `s`, at most `max` characters, the cut marked with "…".
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

/// A generous estimate of the width of `s` set in sans-serif at `size` px (DejaVu Sans
/// metrics rounded up), so a label laid out by it is never wider on the page.
pub fn text_width(s: &str, size: f64, bold: bool) -> f64 {
    let em: f64 = s
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'I' => 0.33,
            ' ' | 'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' => 0.42,
            'm' | 'w' | 'M' | 'W' | '%' | '@' | '…' => 0.95,
            c if c.is_ascii_uppercase() => 0.78,
            c if c.is_ascii_digit() => 0.66,
            c if c.is_ascii() => 0.64,
            _ => 1.0,
        })
        .sum();
    em * size * if bold { 1.1 } else { 1.0 }
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

/// Tick labels for ticks `step` apart: one unit (k, M) for the axis, and just the
/// decimals the step needs, so integer steps read as integers.
fn fmt_ticks(ticks: &[f64], step: f64) -> Vec<String> {
    let top = ticks.iter().fold(0f64, |m, t| m.max(t.abs()));
    let (unit, suffix) = if top >= 1e6 {
        (1e6, "M")
    } else if top >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let s = step / unit;
    let decimals = (0..=4usize)
        .find(|d| {
            let m = 10f64.powi(*d as i32);
            ((s * m).round() - s * m).abs() < 1e-6 * m.max(1.0)
        })
        .unwrap_or(4);
    ticks
        .iter()
        .map(|t| {
            let v = t / unit + 0.0;
            if v == 0.0 {
                "0".to_string()
            } else {
                format!("{v:.decimals$}{suffix}")
            }
        })
        .collect()
}

/// "Nice" tick positions covering [lo, hi]; with `integer`, steps are whole numbers.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    nice_ticks(lo, hi, n, false).0
}

/// Tick positions and their step.
fn nice_ticks(lo: f64, hi: f64, n: usize, integer: bool) -> (Vec<f64>, f64) {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo || n == 0 {
        return (vec![lo], 1.0);
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let steps: &[f64] = if integer && mag < 10.0 {
        &[1.0, 2.0, 5.0, 10.0]
    } else {
        &[1.0, 2.0, 2.5, 5.0, 10.0]
    };
    let mut step = steps
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if integer {
        step = step.max(1.0).round();
    }
    let start = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut i = 0.0;
    while out.len() < 50 {
        let t = start + i * step;
        if t > hi + step * 0.5 {
            break;
        }
        out.push(t);
        i += 1.0;
    }
    (out, step)
}

/// Where things go on a chart's canvas.
struct Layout {
    w: f64,
    h: f64,
    left: f64,
    pw: f64,
    ph: f64,
    /// rotation of the category labels (degrees, 0 = horizontal)
    angle: f64,
    /// baseline of the x tick labels
    tick_y: f64,
    /// baseline of the x axis title
    x_title_y: f64,
}

impl Chart {
    fn finite_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    fn y_title(&self) -> String {
        if self.log_y && !self.y_label.contains("log scale") {
            format!("{} (log scale)", self.y_label)
        } else {
            self.y_label.clone()
        }
    }

    fn layout(&self, y_labels: &[String], x_labels: &[String], names: &[String]) -> Layout {
        let tick_w = y_labels
            .iter()
            .map(|l| text_width(l, FONT, false))
            .fold(0.0, f64::max);
        // y title (rotated, ~1.1 em wide at x = 18), a gap, the tick labels, the tick gap
        let mut left = (30.0 + tick_w + 8.0).max(80.0);
        let legend_w = names
            .iter()
            .map(|n| text_width(n, FONT, false))
            .fold(0.0, f64::max);
        let right = 32.0 + legend_w + 12.0;
        let mut ph = PLOT_H
            .max(text_width(&self.y_title(), FONT, false) + 20.0)
            .max(20.0 * names.len() as f64 + 10.0);
        let mut pw = PLOT_W;
        let mut angle = 0.0;
        let mut below = 18.0 + 4.0; // horizontal tick labels: one line
        if self.kind == Kind::Bar && !x_labels.is_empty() {
            let n = x_labels.len() as f64;
            let widths: Vec<f64> = x_labels
                .iter()
                .map(|l| text_width(l, FONT, false))
                .collect();
            let widest = widths.iter().copied().fold(0.0, f64::max);
            // rotated labels need at least a line's height between neighbours
            pw = pw.max(n * FONT * 1.4);
            let slot = pw / n;
            if widest > slot - 8.0 {
                angle = [30.0f64, 45.0, 60.0, 90.0]
                    .into_iter()
                    .find(|a| slot * a.to_radians().sin() >= FONT * 1.4)
                    .unwrap_or(90.0);
                let (sin, cos) = (angle.to_radians().sin(), angle.to_radians().cos());
                below = 14.0 + widest * sin + FONT * cos + 6.0;
                // the first labels reach left, under the y axis: room for them too
                for (i, w) in widths.iter().enumerate() {
                    let need = w * cos + FONT * sin + 6.0 - slot * (i as f64 + 0.5);
                    left = left.max(need);
                }
            }
        }
        let title_w = text_width(&self.title, TITLE_FONT, true) + 20.0;
        let x_title_w = text_width(&self.x_label, FONT, false) + 20.0;
        pw = pw.max(x_title_w);
        let mut w = left + pw + right;
        if title_w > w {
            pw += title_w - w;
            w = title_w;
        }
        ph = ph.max(0.0);
        let tick_y = TOP + ph + if angle > 0.0 { 14.0 } else { 18.0 };
        let x_title_y = TOP + ph + below + FONT + 4.0;
        let h = x_title_y + 10.0;
        Layout {
            w,
            h,
            left,
            pw,
            ph,
            angle,
            tick_y,
            x_title_y,
        }
    }

    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
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
        let whole = |v: f64| v.fract() == 0.0 && v.abs() < 1e15;
        let int_y = !empty && self.finite_points().all(|(_, y)| whole(y));
        let int_x = !empty && self.finite_points().all(|(x, _)| whole(x));
        let (yt, y_labels) = if self.log_y {
            let lo = ymin.floor();
            let hi = ymax.ceil();
            (ymin, ymax) = (lo, hi);
            let t: Vec<f64> = (lo as i64..=hi as i64).map(|e| e as f64).collect();
            let labels = t.iter().map(|e| fmt_num(10f64.powf(*e))).collect();
            (t, labels)
        } else {
            let (t, step) = nice_ticks(ymin, ymax, 5, int_y);
            ymax = ymax.max(*t.last().unwrap_or(&ymax));
            ymin = ymin.min(*t.first().unwrap_or(&ymin));
            let labels = fmt_ticks(&t, step);
            (t, labels)
        };
        let (xt, x_tick_labels) = if self.kind == Kind::Line {
            let (t, step) = nice_ticks(xmin, xmax, 6, int_x);
            let t: Vec<f64> = t
                .into_iter()
                .filter(|t| *t >= xmin - 1e-9 && *t <= xmax + 1e-9)
                .collect();
            let labels = fmt_ticks(&t, step);
            (t, labels)
        } else {
            (Vec::new(), Vec::new())
        };
        let cats: Vec<String> = self
            .categories
            .iter()
            .map(|c| shorten(c, MAX_NAME))
            .collect();
        let names: Vec<String> = self
            .series
            .iter()
            .map(|s| shorten(&s.name, MAX_NAME))
            .collect();
        let l = self.layout(&y_labels, &cats, &names);
        let (w, h, left, pw, ph) = (l.w, l.h, l.left, l.pw, l.ph);
        let sx = |x: f64| left + (x - xmin) / (xmax - xmin) * pw;
        let sy = |y: f64| TOP + ph - (y - ymin) / (ymax - ymin) * ph;

        let mut o = String::new();
        o.push_str(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        ));
        o.push_str(&format!(
            "<rect width=\"{w:.0}\" height=\"{h:.0}\" fill=\"white\"/>\n"
        ));
        o.push_str(&format!(
            "<text x=\"{:.1}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
            w / 2.0,
            esc(&self.title)
        ));
        // y grid and ticks
        for (t, label) in yt.iter().zip(&y_labels) {
            let y = sy(*t);
            o.push_str(&format!(
                "<line x1=\"{left:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                left + pw,
                left - 6.0,
                y + 4.0,
                label
            ));
        }
        // axes
        o.push_str(&format!(
            "<line x1=\"{left:.1}\" x2=\"{left:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"black\"/>\n<line x1=\"{left:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
            TOP + ph,
            left + pw,
            TOP + ph,
            TOP + ph
        ));
        // x ticks
        match self.kind {
            Kind::Bar => {
                for (i, c) in cats.iter().enumerate() {
                    let x = sx(i as f64);
                    if l.angle > 0.0 {
                        o.push_str(&format!(
                            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"end\" transform=\"rotate(-{} {x:.1} {:.1})\">{}</text>\n",
                            l.tick_y,
                            l.angle,
                            l.tick_y,
                            esc(c)
                        ));
                    } else {
                        o.push_str(&format!(
                            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                            l.tick_y,
                            esc(c)
                        ));
                    }
                }
            }
            Kind::Line => {
                for (t, label) in xt.iter().zip(&x_tick_labels) {
                    let x = sx(*t);
                    o.push_str(&format!(
                        "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                        TOP + ph,
                        TOP + ph + 5.0,
                        l.tick_y,
                        label
                    ));
                }
            }
        }
        // axis titles
        o.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            left + pw / 2.0,
            l.x_title_y,
            esc(&self.x_label)
        ));
        o.push_str(&format!(
            "<text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">{}</text>\n",
            TOP + ph / 2.0,
            TOP + ph / 2.0,
            esc(&self.y_title())
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
            // the legend sits right of the plot, never over a series
            let ly = TOP + 10.0 + 20.0 * si as f64;
            o.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{ly:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                left + pw + 15.0,
                left + pw + 32.0,
                ly + 10.0,
                esc(&names[si])
            ));
        }
        if empty {
            o.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n",
                left + pw / 2.0,
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
#[path = "chart_tests.rs"]
mod unit;
