//! auto_explain entries in a server log: `<log_line_prefix>LOG:  duration: 12.3 ms  plan:`
//! followed by the plan (text or JSON, one tab-indented line each), until the next log
//! record. Each entry becomes its own plan with its duration; its query text is the
//! plan's `Query Text`.

use super::clean::Line;

/// A severity tag PostgreSQL writes after the prefix of every log record.
const SEVERITIES: [&str; 12] = [
    "LOG:  ",
    "ERROR:  ",
    "WARNING:  ",
    "NOTICE:  ",
    "INFO:  ",
    "FATAL:  ",
    "PANIC:  ",
    "DETAIL:  ",
    "HINT:  ",
    "CONTEXT:  ",
    "STATEMENT:  ",
    "DEBUG",
];

/// One auto_explain entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Line of the `duration: ... plan:` header.
    pub line: usize,
    pub duration_ms: Option<f64>,
    pub body: Vec<Line>,
}

/// `duration: 12.345 ms  plan:` somewhere in the line: the duration and what follows.
fn header(text: &str) -> Option<(Option<f64>, &str)> {
    let at = text.find("duration: ")?;
    let rest = &text[at + "duration: ".len()..];
    let (num, after) = rest.split_once(" ms")?;
    let plan_at = after.find("plan:")?;
    if !after[..plan_at].trim().is_empty() {
        return None;
    }
    let d = num.trim().parse::<f64>().ok().filter(|f| f.is_finite());
    Some((d, &after[plan_at + "plan:".len()..]))
}

fn starts_record(text: &str) -> bool {
    SEVERITIES.iter().any(|s| text.contains(s))
}

/// Does the paste hold at least one auto_explain entry?
pub fn is_log(lines: &[Line]) -> bool {
    lines.iter().any(|l| header(&l.text).is_some())
}

/// Split a log into its auto_explain entries; other records are skipped.
pub fn entries(lines: &[Line]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut open = false;
    for l in lines {
        if let Some((d, rest)) = header(&l.text) {
            let mut body = Vec::new();
            if !rest.trim().is_empty() {
                body.push(Line {
                    no: l.no,
                    text: rest.trim().to_string(),
                });
            }
            out.push(Entry {
                line: l.no,
                duration_ms: d,
                body,
            });
            open = true;
        } else if starts_record(&l.text) {
            open = false;
        } else if open {
            if let Some(e) = out.last_mut() {
                e.body.push(l.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::plans::import::clean::clean;

    #[test]
    fn entries_split_at_each_record() {
        let log = "2026-12-04 02:00:00.123 UTC [811] LOG:  duration: 1.234 ms  plan:\n\tQuery Text: select 1\n\tResult  (cost=0.00..0.01 rows=1 width=4) (actual time=0.001..0.001 rows=1 loops=1)\n2026-12-04 02:00:01.000 UTC [811] LOG:  statement: select 2\n2026-12-04 02:00:02.000 UTC [812] LOG:  duration: 0.500 ms  plan:\n\t{\n\t  \"Query Text\": \"select 2\",\n\t  \"Plan\": {\"Node Type\": \"Result\", \"Plan Rows\": 1}\n\t}\n";
        let lines = clean(log);
        assert!(is_log(&lines));
        let e = entries(&lines);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].duration_ms, Some(1.234));
        assert_eq!(e[0].body.len(), 2);
        assert_eq!((e[1].line, e[1].body.len()), (5, 4));
        assert!(header("LOG:  duration: 3 ms  statement: select 1").is_none());
    }
}
