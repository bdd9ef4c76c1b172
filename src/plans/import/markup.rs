//! EXPLAIN's YAML and XML formats read into the JSON document they mirror (YAML keys
//! are JSON's; XML tags are JSON's keys with `-` for spaces), then through the JSON
//! reader. Only the subset EXPLAIN prints: YAML mappings, `- ` lists and scalars, one
//! item per line; XML elements, text and the five predefined entities.

use super::clean::Line;
use super::ImportError;
use crate::infra::json::MAX_JSON_DEPTH;
use crate::plans::parse::parse_explain_value;
use crate::plans::tree::ExplainResult;
use serde_json::{Map, Value};

fn to_result(v: &Value, line: usize, what: &str) -> Result<ExplainResult, ImportError> {
    parse_explain_value(v).map_err(|e| ImportError::new(line, what, &e.to_string()))
}

/// A YAML scalar as JSON: quoted strings unescaped, numbers and booleans typed.
fn yaml_scalar(s: &str) -> Value {
    let t = s.trim();
    if t.starts_with('"') {
        if let Ok(Value::String(u)) = serde_json::from_str::<Value>(t) {
            return Value::String(u);
        }
    }
    match t {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = t.parse::<i64>() {
        return Value::Number(n.into());
    }
    if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        return Value::Number(n);
    }
    Value::String(t.to_string())
}

struct YamlLine<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

/// Read the block starting at `*i` whose lines are indented exactly `indent`.
fn yaml_block(
    lines: &[YamlLine<'_>],
    i: &mut usize,
    indent: usize,
    depth: usize,
) -> Result<Value, ImportError> {
    if depth > MAX_JSON_DEPTH {
        let no = lines.get(*i).map_or(1, |l| l.no);
        return Err(ImportError::new(
            no,
            "a plan of at most 200 levels",
            "deeper nesting",
        ));
    }
    let is_list = lines
        .get(*i)
        .is_some_and(|l| l.text.starts_with("- ") || l.text == "-");
    if is_list {
        let mut items = Vec::new();
        while let Some(l) = lines.get(*i) {
            if l.indent != indent || !(l.text.starts_with("- ") || l.text == "-") {
                break;
            }
            let rest = l.text.get(2..).unwrap_or("").trim();
            *i += 1;
            if rest.is_empty() {
                // "-" alone: the item is the block below it (see parse_yaml)
                match lines.get(*i) {
                    Some(n) if n.indent > indent => {
                        let ni = n.indent;
                        items.push(yaml_block(lines, i, ni, depth + 1)?);
                    }
                    _ => items.push(Value::Null),
                }
            } else {
                items.push(yaml_scalar(rest));
            }
        }
        return Ok(Value::Array(items));
    }
    yaml_map(lines, i, indent, depth)
}

fn yaml_map(
    lines: &[YamlLine<'_>],
    i: &mut usize,
    indent: usize,
    depth: usize,
) -> Result<Value, ImportError> {
    let mut m = Map::new();
    while let Some(l) = lines.get(*i) {
        if l.indent < indent {
            break;
        }
        if l.indent > indent || l.text.starts_with("- ") {
            return Err(ImportError::new(
                l.no,
                "a 'Key: value' line of EXPLAIN (FORMAT YAML)",
                l.text,
            ));
        }
        let (key, value) = match l.text.split_once(": ") {
            Some((k, v)) => (k, v.trim()),
            None => match l.text.strip_suffix(':') {
                Some(k) => (k, ""),
                None => {
                    return Err(ImportError::new(
                        l.no,
                        "a 'Key: value' line of EXPLAIN (FORMAT YAML)",
                        l.text,
                    ))
                }
            },
        };
        *i += 1;
        let v = if value.is_empty() {
            match lines.get(*i) {
                Some(n)
                    if n.indent > indent || (n.indent == indent && n.text.starts_with("- ")) =>
                {
                    let ni = n.indent;
                    yaml_block(lines, i, ni, depth + 1)?
                }
                _ => Value::Null,
            }
        } else {
            yaml_scalar(value)
        };
        m.insert(key.to_string(), v);
    }
    Ok(Value::Object(m))
}

/// EXPLAIN (FORMAT YAML).
pub fn parse_yaml(lines: &[Line]) -> Result<ExplainResult, ImportError> {
    // "- Key: value" is a list item opening a mapping: split it into "-" and the
    // mapping's first line two columns right, where the item's other keys are
    let mut yl: Vec<YamlLine<'_>> = Vec::new();
    for l in lines {
        let indent = l.text.len() - l.text.trim_start().len();
        let text = l.text.trim();
        match text.strip_prefix("- ") {
            Some(rest) if rest.contains(": ") || rest.ends_with(':') => {
                yl.push(YamlLine {
                    no: l.no,
                    indent,
                    text: "-",
                });
                yl.push(YamlLine {
                    no: l.no,
                    indent: indent + 2,
                    text: rest.trim(),
                });
            }
            _ => yl.push(YamlLine {
                no: l.no,
                indent,
                text,
            }),
        }
    }
    let first = yl.first().map_or(1, |l| l.no);
    let indent = yl.first().map_or(0, |l| l.indent);
    let mut i = 0;
    let v = yaml_block(&yl, &mut i, indent, 0)?;
    if let Some(l) = yl.get(i) {
        return Err(ImportError::new(l.no, "the end of the YAML plan", l.text));
    }
    to_result(&v, first, "the output of EXPLAIN (FORMAT YAML)")
}

fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Line number of a byte offset.
fn line_at(starts: &[(usize, usize)], at: usize) -> usize {
    match starts.binary_search_by(|(s, _)| s.cmp(&at)) {
        Ok(i) => starts.get(i).map_or(1, |s| s.1),
        Err(i) => starts.get(i.saturating_sub(1)).map_or(1, |s| s.1),
    }
}

/// EXPLAIN (FORMAT XML).
pub fn parse_xml(lines: &[Line]) -> Result<ExplainResult, ImportError> {
    let mut doc = String::new();
    let mut starts = Vec::new();
    for l in lines {
        starts.push((doc.len(), l.no));
        doc.push_str(&l.text);
        doc.push('\n');
    }
    // (tag, children, text)
    let mut stack: Vec<(String, Vec<(String, Value)>, String)> =
        vec![(String::new(), Vec::new(), String::new())];
    let mut rest = doc.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('<') {
        if let Some(top) = stack.last_mut() {
            top.2.push_str(&rest[..open]);
        }
        let close = rest[open..].find('>').map(|c| open + c).ok_or_else(|| {
            ImportError::new(
                line_at(&starts, offset + open),
                "a '>' closing the tag",
                &rest[open..],
            )
        })?;
        let tag = &rest[open + 1..close];
        let at = line_at(&starts, offset + open);
        if tag.starts_with('?') || tag.starts_with('!') {
        } else if let Some(name) = tag.strip_prefix('/') {
            let Some((t, kids, text)) = stack.pop() else {
                return Err(ImportError::new(at, "a matching opening tag", tag));
            };
            if t != name.trim() {
                return Err(ImportError::new(at, &format!("</{t}>"), tag));
            }
            let value = if kids.is_empty() {
                let txt = unescape_xml(text.trim());
                match txt.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => Value::String(txt),
                }
            } else if kids
                .iter()
                .all(|(k, _)| k == "Item" || k == "Plan" || k == "Trigger" || k == "Worker")
                && t != "Query"
            {
                Value::Array(kids.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(kids.into_iter().collect())
            };
            let Some(parent) = stack.last_mut() else {
                return Err(ImportError::new(
                    at,
                    "a closing tag inside the document",
                    tag,
                ));
            };
            parent.1.push((t.replace('-', " "), value));
        } else {
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('/');
            if stack.len() > MAX_JSON_DEPTH {
                return Err(ImportError::new(
                    at,
                    "a plan of at most 200 levels",
                    "deeper nesting",
                ));
            }
            if !tag.ends_with('/') {
                stack.push((name.to_string(), Vec::new(), String::new()));
            }
        }
        offset += close + 1;
        rest = &rest[close + 1..];
    }
    if stack.len() != 1 {
        let t = stack.last().map(|s| s.0.clone()).unwrap_or_default();
        return Err(ImportError::new(
            lines.last().map_or(1, |l| l.no),
            &format!("</{t}>"),
            "the end of the text",
        ));
    }
    let root = stack.pop().map(|s| s.1).unwrap_or_default();
    // <explain><Query>...</Query></explain>
    let query = root
        .into_iter()
        .find(|(k, _)| k == "explain")
        .and_then(|(_, v)| match v {
            Value::Object(m) => m.get("Query").cloned(),
            _ => None,
        })
        .ok_or_else(|| {
            ImportError::new(
                lines.first().map_or(1, |l| l.no),
                "<explain><Query>...</Query></explain>",
                "other XML",
            )
        })?;
    to_result(
        &query,
        lines.first().map_or(1, |l| l.no),
        "the output of EXPLAIN (FORMAT XML)",
    )
}
