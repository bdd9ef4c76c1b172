//! Plans capstone did not run: a pasted EXPLAIN in JSON, text, YAML or XML, or
//! auto_explain entries from a server log, read into the same plan tree a capture has.
//! Detects the format, parses, and writes each plan back as EXPLAIN JSON for the
//! evidence store. Pure Rust: no SQL, no pgrx types; the SQL surface is in `plans/mod.rs`.
//!
//! The rooms: `clean` undoes psql/terminal decorations, `text` and `text_node` read the
//! text format, `auto_explain` splits a log into entries, `markup` reads YAML and XML,
//! `emit` writes the tree as EXPLAIN JSON.

pub mod auto_explain;
pub mod clean;
pub mod emit;
pub mod emit_text;
pub mod markup;
pub mod text;
pub mod text_node;
pub mod text_prop;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod import_tests;

/// The first plan of a paste, for tests: an import error fails the test that asked.
#[cfg(test)]
pub(crate) fn first_plan(src: &str) -> ExplainResult {
    let r = import(src);
    assert!(r.is_ok(), "{:?}", r.as_ref().err());
    r.ok()
        .and_then(|i| i.plans.into_iter().next())
        .map(|p| p.parsed)
        .unwrap_or_default()
}

use super::parse::{parse_explain_json, PlanError};
use super::tree::ExplainResult;
use std::fmt;

/// Why a pasted plan could not be read: the line (1-based, in the text as given) and
/// what the reader expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub line: usize,
    pub expected: String,
    pub found: String,
}

impl ImportError {
    pub fn new(line: usize, expected: &str, found: &str) -> Self {
        let mut found: String = found.trim().chars().take(80).collect();
        if found.is_empty() {
            found = "nothing".into();
        }
        ImportError {
            line,
            expected: expected.to_string(),
            found,
        }
    }

    /// A JSON reader's error, its line counted from `first_line` of the paste.
    fn from_plan(e: PlanError, first_line: usize) -> Self {
        let line = match &e {
            PlanError::Json { line, .. } => first_line + line.saturating_sub(1),
            _ => first_line,
        };
        // the JSON reader's own message says what it found; keep all of it
        ImportError {
            line,
            expected: "the output of EXPLAIN (FORMAT JSON)".into(),
            found: e.to_string(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: expected {}, found \"{}\"",
            self.line, self.expected, self.found
        )
    }
}

impl std::error::Error for ImportError {}

/// The formats capstone reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
    Yaml,
    Xml,
    /// A server log with auto_explain entries (each text or JSON).
    AutoExplain,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Text => "text",
            Format::Yaml => "yaml",
            Format::Xml => "xml",
            Format::AutoExplain => "auto_explain",
        }
    }
}

/// One plan read from the paste.
#[derive(Debug, Clone)]
pub struct ImportedPlan {
    /// What is stored: the plan's own text lines (text format, decorations removed)
    /// or, for JSON, YAML and XML, the tree as compact EXPLAIN JSON; see [`stored`].
    pub stored: String,
    /// The format of `stored` (text or json).
    pub stored_format: Format,
    pub parsed: ExplainResult,
    /// The format of this plan's own text (text or json inside an auto_explain log).
    pub format: Format,
    /// auto_explain's `duration: X ms`.
    pub duration_ms: Option<f64>,
    /// The line of the paste the plan starts at.
    pub line: usize,
}

/// Everything read from one paste.
#[derive(Debug, Clone)]
pub struct Imported {
    pub format: Format,
    pub plans: Vec<ImportedPlan>,
}

/// Which format a cleaned paste is in.
pub fn detect(lines: &[clean::Line]) -> Format {
    if auto_explain::is_log(lines) {
        return Format::AutoExplain;
    }
    let first = lines.first().map(|l| l.text.trim_start()).unwrap_or("");
    if first.starts_with('[') || first.starts_with('{') {
        Format::Json
    } else if first.starts_with("<explain") || first.starts_with("<?xml") {
        Format::Xml
    } else if first.starts_with("- Plan:") || first.starts_with("Plan:") {
        Format::Yaml
    } else {
        Format::Text
    }
}

/// One plan in a single format, from its cleaned lines.
pub fn parse_one(lines: &[clean::Line], format: Format) -> Result<ExplainResult, ImportError> {
    let first_line = lines.first().map_or(1, |l| l.no);
    match format {
        Format::Json => {
            let text: String = lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            parse_explain_json(&text).map_err(|e| ImportError::from_plan(e, first_line))
        }
        Format::Yaml => markup::parse_yaml(lines),
        Format::Xml => markup::parse_xml(lines),
        Format::Text | Format::AutoExplain => text::parse_text(lines),
    }
}

fn plan_of(
    lines: &[clean::Line],
    format: Format,
    duration_ms: Option<f64>,
) -> Result<ImportedPlan, ImportError> {
    let parsed = parse_one(lines, format)?;
    // a text plan is kept as text (it is the smallest form and reads back fastest); the
    // others as the JSON of the tree, which holds everything capstone reads from them
    let (stored, stored_format) = match format {
        Format::Text | Format::AutoExplain => (
            lines
                .iter()
                .map(|l| l.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            Format::Text,
        ),
        _ => stored_form(&parsed),
    };
    Ok(ImportedPlan {
        stored,
        stored_format,
        parsed,
        format,
        duration_ms,
        line: lines.first().map_or(1, |l| l.no),
    })
}

/// How a JSON, YAML or XML plan is stored: as text when it reads back to the same tree
/// (anything the text form cannot carry, such as a multi-line Query Text, keeps the
/// JSON form).
fn stored_form(parsed: &ExplainResult) -> (String, Format) {
    let text = emit_text::to_explain_text(parsed);
    if stored(&text, "text").is_ok_and(|back| back == *parsed) {
        (text, Format::Text)
    } else {
        (emit::to_explain_json(parsed).to_string(), Format::Json)
    }
}

/// Read back a plan stored by plan_import: `text` in `format` ("text" or "json").
pub fn stored(text: &str, format: &str) -> Result<ExplainResult, ImportError> {
    if format == "json" {
        return parse_explain_json(text).map_err(|e| ImportError::from_plan(e, 1));
    }
    let lines: Vec<clean::Line> = text
        .split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| clean::Line {
            no: i + 1,
            text: l.to_string(),
        })
        .collect();
    text::parse_text(&lines)
}

/// A paste that is a JSON document as it stands (what EXPLAIN or a log printed, with no
/// psql decorations) is read as it is: cleaning its lines could change nothing in it,
/// and for a large plan splitting it into lines costs more than reading it. Anything
/// else, including JSON that does not parse, goes through cleaning, so errors name the
/// line of the paste.
fn plain_json(source: &str) -> Option<Imported> {
    let body = source.trim_start_matches('\u{feff}');
    let t = body.trim_start();
    if !(t.starts_with('[') || t.starts_with('{')) {
        return None;
    }
    let parsed = parse_explain_json(t).ok()?;
    let line = 1 + body[..body.len() - t.len()].matches('\n').count();
    let (stored, stored_format) = stored_form(&parsed);
    Some(Imported {
        format: Format::Json,
        plans: vec![ImportedPlan {
            stored,
            stored_format,
            parsed,
            format: Format::Json,
            duration_ms: None,
            line,
        }],
    })
}

/// Read a pasted plan (or log) in whatever format it is in.
pub fn import(source: &str) -> Result<Imported, ImportError> {
    if let Some(i) = plain_json(source) {
        return Ok(i);
    }
    let lines = clean::clean(source);
    if lines.is_empty() {
        return Err(ImportError::new(
            1,
            "an EXPLAIN plan (text, JSON, YAML or XML) or auto_explain log lines",
            "",
        ));
    }
    let format = detect(&lines);
    let plans = match format {
        Format::AutoExplain => {
            let mut out = Vec::new();
            for e in auto_explain::entries(&lines) {
                let body = e.body;
                if body.is_empty() {
                    return Err(ImportError::new(e.line, "a plan after 'plan:'", ""));
                }
                let f = match detect(&body) {
                    Format::Json => Format::Json,
                    _ => Format::Text,
                };
                out.push(plan_of(&body, f, e.duration_ms)?);
            }
            out
        }
        f => vec![plan_of(&lines, f, None)?],
    };
    Ok(Imported { format, plans })
}
