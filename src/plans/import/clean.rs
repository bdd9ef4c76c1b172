//! Undoing what a terminal, psql or a mail client did to a plan before it was pasted:
//! surrounding quotes, psql's `QUERY PLAN` header, `----` rule and `(N rows)` footer, its
//! `+` continuation marks, ascii and unicode frames, expanded-display record headers,
//! per-line CSV quotes and tabs. What is left are the plan's own lines, each with the
//! line number it had in the paste, so an error can point at it. Hard-wrapped lines are
//! joined later by the text parser, which knows what a plan line looks like.

/// One line of the paste after cleaning, with its 1-based number in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub no: usize,
    pub text: String,
}

const FRAME_SIDES: [char; 3] = ['|', '│', '║'];

/// Characters a border or rule line is made of (and nothing else).
fn is_rule(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && t.chars().all(|c| {
            matches!(
                c,
                '-' | '+'
                    | '='
                    | '|'
                    | ' '
                    | '─'
                    | '━'
                    | '│'
                    | '┌'
                    | '┐'
                    | '└'
                    | '┘'
                    | '├'
                    | '┤'
                    | '┬'
                    | '┴'
                    | '┼'
                    | '═'
                    | '║'
                    | '╔'
                    | '╗'
                    | '╚'
                    | '╝'
                    | '╠'
                    | '╣'
                    | '╦'
                    | '╩'
                    | '╬'
                    | '╞'
                    | '╡'
                    | '╪'
            )
        })
        && t.chars().any(|c| matches!(c, '-' | '─' | '━' | '═'))
}

/// psql's `(N rows)` / `(1 row)` footer.
fn is_footer(s: &str) -> bool {
    let t = s.trim();
    let Some(inner) = t.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return false;
    };
    let mut parts = inner.split(' ');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(n), Some("rows" | "row"), None) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
    )
}

/// Strip one layer of quotes around the whole text, undoing doubled quotes inside; the
/// text is returned as given (leading blank lines and indentation kept, so line numbers
/// and columns stay right) when it is not quoted, or when each line is quoted on its own.
fn strip_outer_quotes(text: &str) -> String {
    let t = text.trim();
    let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let per_line = lines.len() > 1
        && lines
            .iter()
            .all(|l| l.len() >= 2 && l.starts_with('"') && l.ends_with('"'));
    for q in ['\'', '"'] {
        if per_line && q == '"' {
            continue;
        }
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            let inner = &t[q.len_utf8()..t.len() - q.len_utf8()];
            let doubled: String = [q, q].iter().collect();
            // a plan never starts with a quote, so these are the paste's own quotes
            if !inner.trim_start().starts_with(q) {
                let lead = text.len() - text.trim_start().len();
                let blank_lines = text[..lead].matches('\n').count();
                return format!(
                    "{}{}",
                    "\n".repeat(blank_lines),
                    inner.replace(&doubled, &q.to_string())
                );
            }
        }
    }
    text.to_string()
}

fn expand_tabs(s: &str) -> String {
    if s.contains('\t') {
        s.replace('\t', "    ")
    } else {
        s.to_string()
    }
}

/// Clean a pasted plan into its own lines (see the module comment). Empty lines go.
pub fn clean(source: &str) -> Vec<Line> {
    let text = source.trim_start_matches('\u{feff}');
    let text = strip_outer_quotes(text);
    let mut lines: Vec<Line> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| Line {
            no: i + 1,
            text: expand_tabs(l.trim_end_matches('\r')),
        })
        .collect();

    // ascii/unicode frames: "| text |", "│ text │"
    let content: Vec<&Line> = lines
        .iter()
        .filter(|l| !l.text.trim().is_empty() && !is_rule(&l.text))
        .collect();
    let framed = !content.is_empty()
        && content
            .iter()
            .filter(|l| l.text.trim_start().starts_with(FRAME_SIDES))
            .count()
            * 2
            > content.len();
    if framed {
        for l in lines.iter_mut() {
            if is_rule(&l.text) {
                l.text.clear();
                continue;
            }
            let t = l.text.trim();
            let t = t.strip_prefix(FRAME_SIDES).unwrap_or(t);
            let t = t.trim_end();
            let t = t.strip_suffix(FRAME_SIDES).unwrap_or(t);
            l.text = t.trim_end().to_string();
        }
    }

    // expanded display (\x): "-[ RECORD 1 ]---" and "QUERY PLAN | text"
    for l in lines.iter_mut() {
        let t = l.text.trim_start();
        if t.starts_with("-[ RECORD ") {
            l.text.clear();
        } else if let Some(rest) = t.strip_prefix("QUERY PLAN |") {
            l.text = rest.strip_prefix(' ').unwrap_or(rest).to_string();
        } else if t.trim_end() == "QUERY PLAN" || is_footer(t) || is_rule(t) {
            l.text.clear();
        }
    }
    lines.retain(|l| !l.text.trim().is_empty());

    // psql's "+" marks a value that goes on in the next line
    let plus = lines
        .iter()
        .filter(|l| l.text.trim_end().ends_with('+'))
        .count();
    if lines.len() > 1 && plus * 2 >= lines.len() - 1 {
        for l in lines.iter_mut() {
            let t = l.text.trim_end();
            if let Some(rest) = t.strip_suffix('+') {
                l.text = rest.trim_end().to_string();
            }
        }
    }

    // per-line quotes (CSV exports, some GUI clients)
    let quoted = !lines.is_empty()
        && lines.iter().all(|l| {
            let t = l.text.trim();
            t.len() >= 2 && t.starts_with('"') && t.ends_with('"')
        });
    if quoted {
        for l in lines.iter_mut() {
            let lead = l.text.len() - l.text.trim_start().len();
            let t = l.text.trim();
            let inner = &t[1..t.len() - 1];
            l.text = format!("{}{}", " ".repeat(lead), inner.replace("\"\"", "\""));
        }
    }
    lines.retain(|l| !l.text.trim().is_empty());
    lines
}

#[cfg(test)]
mod unit {
    use super::*;

    fn texts(src: &str) -> Vec<String> {
        clean(src).into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn psql_aligned_output_loses_header_rule_and_footer() {
        let src = "                 QUERY PLAN\n--------------------------------------------\n Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n   Filter: (a = 1)\n(2 rows)\n";
        assert_eq!(
            texts(src),
            vec![
                " Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)",
                "   Filter: (a = 1)"
            ]
        );
    }

    #[test]
    fn frames_and_plus_marks_go() {
        let src = "+------------------+\n| QUERY PLAN       |\n+------------------+\n| Seq Scan on t   +|\n|   Filter: (a=1)  |\n+------------------+\n";
        assert_eq!(texts(src), vec![" Seq Scan on t", "   Filter: (a=1)"]);
        let uni = "┌──────────┐\n│ QUERY PLAN │\n├──────────┤\n│ Result   │\n└──────────┘\n(1 row)";
        assert_eq!(texts(uni), vec![" Result"]);
    }

    #[test]
    fn quotes_go_and_line_numbers_stay() {
        let l = clean("'Seq Scan on t\n  Filter: (s = ''x''::text)'");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].no, 2);
        assert_eq!(l[1].text, "  Filter: (s = 'x'::text)");
        let q = texts("\"Seq Scan on t\"\n\"  Filter: (a = \"\"X\"\")\"");
        assert_eq!(q, vec!["Seq Scan on t", "  Filter: (a = \"X\")"]);
        assert!(is_footer("(12 rows)") && !is_footer("(never executed)"));
    }
}
