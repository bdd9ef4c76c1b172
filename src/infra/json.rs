//! JSON as deep as a plan nests: serde_json alone stops at 128 levels (about 62 plan
//! levels), and pgrx's jsonb decoding at the same depth. Deeper text is refused before any
//! recursion, so a hostile document cannot exhaust the stack.

use serde_json::Value;
use std::fmt;

/// Deepest plan nesting capstone reads.
pub const MAX_PLAN_DEPTH: usize = 200;

/// Deepest JSON nesting read at all: a plan level nests about two JSON levels deep
/// (the node object and its "Plans" array), plus the wrapping array and object.
pub const MAX_JSON_DEPTH: usize = 2 * MAX_PLAN_DEPTH + 8;

/// Why a text could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The text is not valid JSON.
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// The text nests deeper than [`MAX_JSON_DEPTH`]; `limit` is in plan levels.
    TooDeep { limit: usize },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax {
                line,
                column,
                message,
            } => write!(f, "invalid JSON at line {line}, column {column}: {message}"),
            JsonError::TooDeep { limit } => {
                write!(f, "the document nests deeper than {limit} plan levels")
            }
        }
    }
}

impl std::error::Error for JsonError {}

/// How deeply `text` nests arrays and objects (strings skipped).
pub fn depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parse JSON as deep as [`MAX_JSON_DEPTH`].
pub fn parse_deep(text: &str) -> Result<Value, JsonError> {
    if depth(text) > MAX_JSON_DEPTH {
        return Err(JsonError::TooDeep {
            limit: MAX_PLAN_DEPTH,
        });
    }
    let syntax = |e: serde_json::Error| JsonError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v = <Value as serde::Deserialize>::deserialize(&mut de).map_err(syntax)?;
    de.end().map_err(syntax)?;
    Ok(v)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn depth_skips_strings() {
        assert_eq!(depth(r#"[{"a": "[[[{{"}]"#), 2);
        assert_eq!(depth("1"), 0);
    }

    #[test]
    fn deep_documents_parse_up_to_the_limit_and_no_further() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_deep(&nest(MAX_JSON_DEPTH)).is_ok());
        assert_eq!(
            parse_deep(&nest(MAX_JSON_DEPTH + 1)),
            Err(JsonError::TooDeep {
                limit: MAX_PLAN_DEPTH
            })
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        let got = parse_deep("{\n \"a\": }");
        assert!(
            matches!(got, Err(JsonError::Syntax { line: 2, .. })),
            "got {got:?}"
        );
    }
}
