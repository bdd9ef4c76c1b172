//! What transaction pooling breaks, recognised in statement text.
//!
//! In transaction mode PgBouncer hands a client a server connection for one
//! transaction only. Anything a statement leaves behind on the *session* (a
//! setting, a lock, a cursor, a temp table, a prepared statement, a LISTEN) stays
//! on a backend that the next transaction — often another client's — gets, while
//! the client that made it may land elsewhere. This module classifies statement
//! texts (as pg_stat_statements keeps them, constants possibly replaced by $n)
//! into those hazards, walking the tokens of the shared lexer (`infra::sql_lex`).
//! No pgrx types and no server reads: plain `#[test]`s cover it.

use crate::infra::sql_lex::{tokenize_bodies, Tok};

/// One kind of hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Issue {
    SessionSet,
    SetRole,
    SetConfig,
    Listen,
    SessionAdvisoryLock,
    WithHoldCursor,
    TempTable,
    SqlPrepare,
}

/// PgBouncer re-applies these when it moves a client to another server
/// connection (they are reported by the server as ParameterStatus).
pub const TRACKED_BY_PGBOUNCER: &[&str] = &[
    "client_encoding",
    "datestyle",
    "timezone",
    "standard_conforming_strings",
    "application_name",
];

impl Issue {
    /// Stable identifier, used in result rows and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Issue::SessionSet => "session_set",
            Issue::SetRole => "set_role",
            Issue::SetConfig => "set_config",
            Issue::Listen => "listen",
            Issue::SessionAdvisoryLock => "session_advisory_lock",
            Issue::WithHoldCursor => "with_hold_cursor",
            Issue::TempTable => "temp_table",
            Issue::SqlPrepare => "sql_prepare",
        }
    }

    pub fn fix(&self) -> &'static str {
        match self {
            Issue::SessionSet => "use SET LOCAL inside the transaction, or fix the value per role/database with ALTER ROLE ... SET / ALTER DATABASE ... SET; PgBouncer re-applies only client_encoding, DateStyle, TimeZone, standard_conforming_strings and application_name",
            Issue::SetRole => "privileges leak to whichever client gets the server connection next: use SET LOCAL ROLE inside the transaction, or give each role its own PgBouncer pool (one pool per user)",
            Issue::SetConfig => "pass is_local => true (set_config(name, value, true)) so the setting ends with the transaction",
            Issue::Listen => "notifications go to the backend that ran LISTEN, which other clients now share and this client may never see again: keep listeners on a direct or session-mode connection; NOTIFY itself is fine in transaction mode",
            Issue::SessionAdvisoryLock => "use pg_advisory_xact_lock / pg_try_advisory_xact_lock, released at commit; a session lock stays on a server connection another client gets, and the unlock may run on a different backend",
            Issue::WithHoldCursor => "a WITH HOLD cursor lives on one backend after COMMIT, so the next FETCH may reach another: page with keyset queries (WHERE key > $last ORDER BY key LIMIT n) or use a direct connection",
            Issue::TempTable => "create it ON COMMIT DROP inside the transaction that uses it, or use an ordinary (or unlogged) table keyed by a session id",
            Issue::SqlPrepare => "EXECUTE may land on a backend that never saw the PREPARE: inline the statement, or use protocol-level prepared statements with PgBouncer 1.21+ (max_prepared_statements > 0), which never covers SQL-level PREPARE",
        }
    }
}

/// A classified statement: the hazard, its risk, and what exactly was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub issue: Issue,
    pub risk: &'static str,
    pub what: String,
}

/// An identifier or keyword (quoted identifiers as written), else None.
fn word(t: Option<&Tok>) -> Option<&str> {
    t.and_then(Tok::ident)
}

/// Split at top-level semicolons (a pg_stat_statements entry is one statement,
/// but a DO body or a multi-statement simple query may hold several).
fn statements(toks: &[Tok]) -> Vec<&[Tok]> {
    toks.split(|t| *t == Tok::Punct(';'))
        .filter(|s| !s.is_empty())
        .collect()
}

/// A dotted name starting at `i` (`a.b.c`), and the index after it.
fn dotted(toks: &[Tok], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while let Some(w) = word(toks.get(i)) {
        name.push_str(w);
        i += 1;
        if toks.get(i) == Some(&Tok::Punct('.')) {
            name.push('.');
            i += 1;
        } else {
            break;
        }
    }
    (name, i)
}

fn contains_seq(toks: &[Tok], seq: &[&str]) -> bool {
    toks.windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(t, s)| word(Some(t)) == Some(*s)))
}

fn classify_set(s: &[Tok]) -> Option<Finding> {
    let mut i = 1;
    match word(s.get(i)) {
        Some("local") | Some("transaction") | Some("constraints") => return None,
        Some("session") => {
            i += 1;
            match word(s.get(i)) {
                Some("authorization") => {
                    return Some(Finding {
                        issue: Issue::SetRole,
                        risk: "high",
                        what: "SET SESSION AUTHORIZATION".into(),
                    })
                }
                Some("characteristics") => {
                    return Some(Finding {
                        issue: Issue::SessionSet,
                        risk: "medium",
                        what: "SET SESSION CHARACTERISTICS (default transaction mode)".into(),
                    })
                }
                _ => {}
            }
        }
        _ => {}
    }
    let (name, _) = dotted(s, i);
    let param = match name.as_str() {
        "" => return None,
        "role" => {
            return Some(Finding {
                issue: Issue::SetRole,
                risk: "high",
                what: "SET ROLE".into(),
            })
        }
        "time" if word(s.get(i + 1)) == Some("zone") => "timezone".to_string(),
        "names" => "client_encoding".to_string(),
        "schema" => "search_path".to_string(),
        "xml" => "xmloption".to_string(),
        other => other.to_string(),
    };
    let risk = if TRACKED_BY_PGBOUNCER.contains(&param.as_str()) {
        "low"
    } else if param == "search_path" {
        "high"
    } else {
        "medium"
    };
    Some(Finding {
        issue: Issue::SessionSet,
        risk,
        what: format!("SET {param} (session-level)"),
    })
}

fn classify_statement(s: &[Tok]) -> Vec<Finding> {
    let mut out = Vec::new();
    let first = word(s.first());
    match first {
        Some("set") => out.extend(classify_set(s)),
        Some("listen") => out.push(Finding {
            issue: Issue::Listen,
            risk: "high",
            what: format!("LISTEN {}", word(s.get(1)).unwrap_or("?")),
        }),
        Some("declare") => {
            let body_at = s
                .iter()
                .position(|t| word(Some(t)) == Some("for"))
                .unwrap_or(s.len());
            let head = &s[..body_at];
            if contains_seq(head, &["with", "hold"]) {
                out.push(Finding {
                    issue: Issue::WithHoldCursor,
                    risk: "high",
                    what: format!("DECLARE {} CURSOR WITH HOLD", word(s.get(1)).unwrap_or("?")),
                });
            }
        }
        Some("create") => {
            let mut i = 1;
            if word(s.get(i)) == Some("or") && word(s.get(i + 1)) == Some("replace") {
                i += 2;
            }
            if matches!(word(s.get(i)), Some("global") | Some("local")) {
                i += 1;
            }
            if matches!(word(s.get(i)), Some("temp") | Some("temporary")) {
                let kind = word(s.get(i + 1)).unwrap_or("table");
                let kind = if kind == "unlogged" { "table" } else { kind };
                if !contains_seq(s, &["on", "commit", "drop"]) {
                    out.push(Finding {
                        issue: Issue::TempTable,
                        risk: "high",
                        what: format!("CREATE TEMP {}", kind.to_uppercase()),
                    });
                }
            }
        }
        Some("select")
            if contains_seq(s, &["into", "temp"])
                || contains_seq(s, &["into", "temporary"])
                || contains_seq(s, &["into", "local", "temp"]) =>
        {
            out.push(Finding {
                issue: Issue::TempTable,
                risk: "high",
                what: "SELECT ... INTO TEMP".into(),
            });
        }
        Some("prepare") if word(s.get(1)) != Some("transaction") => out.push(Finding {
            issue: Issue::SqlPrepare,
            risk: "high",
            what: format!("PREPARE {}", word(s.get(1)).unwrap_or("?")),
        }),
        _ => {}
    }
    // calls anywhere in the statement, including DO blocks and function bodies
    for (k, t) in s.iter().enumerate() {
        let Some(w) = word(Some(t)) else { continue };
        if s.get(k + 1) != Some(&Tok::Punct('(')) {
            continue;
        }
        match w {
            "pg_advisory_lock"
            | "pg_advisory_lock_shared"
            | "pg_try_advisory_lock"
            | "pg_try_advisory_lock_shared" => out.push(Finding {
                issue: Issue::SessionAdvisoryLock,
                risk: "high",
                what: format!("{w}() (session-level)"),
            }),
            "set_config" => {
                // the third argument is_local; pg_stat_statements usually shows it as $n
                let args: Vec<&Tok> = s[k + 2..]
                    .iter()
                    .take_while(|t| **t != Tok::Punct(')'))
                    .collect();
                let is_local_true = args.iter().any(|t| word(Some(t)) == Some("true"));
                if !is_local_true {
                    let shown_false = args.iter().any(|t| word(Some(t)) == Some("false"));
                    out.push(Finding {
                        issue: Issue::SetConfig,
                        risk: if shown_false { "medium" } else { "check" },
                        what: if shown_false {
                            "set_config(..., false) (session-level)".into()
                        } else {
                            "set_config(...) with is_local not visible in the text".into()
                        },
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Every hazard in one statement text.
pub fn classify(sql: &str) -> Vec<Finding> {
    // the bodies of dollar-quoted strings are lexed too, so calls inside DO blocks
    // and function bodies are seen
    let toks = tokenize_bodies(sql);
    let mut out: Vec<Finding> = statements(&toks)
        .into_iter()
        .flat_map(classify_statement)
        .collect();
    out.dedup();
    out
}

/// Rank for ordering rows: high first.
pub fn risk_rank(risk: &str) -> i32 {
    match risk {
        "high" => 0,
        "medium" => 1,
        "check" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// First `max` characters of a statement on one line, for the evidence column.
pub fn excerpt(sql: &str, max: usize) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut s: String = one_line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn issues(sql: &str) -> Vec<(&'static str, &'static str)> {
        classify(sql)
            .into_iter()
            .map(|f| (f.issue.name(), f.risk))
            .collect()
    }

    #[test]
    fn session_set_but_not_set_local() {
        assert_eq!(
            issues("SET search_path = app, public"),
            [("session_set", "high")]
        );
        assert_eq!(issues("set work_mem = $1"), [("session_set", "medium")]);
        assert_eq!(
            issues("SET SESSION statement_timeout TO '5s'"),
            [("session_set", "medium")]
        );
        assert_eq!(issues("SET LOCAL work_mem = '64MB'"), []);
        assert_eq!(issues("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"), []);
        assert_eq!(issues("SET CONSTRAINTS ALL DEFERRED"), []);
        // parameters PgBouncer re-applies are low risk
        assert_eq!(issues("SET TIME ZONE 'UTC'"), [("session_set", "low")]);
        assert_eq!(
            issues("SET application_name = 'x'"),
            [("session_set", "low")]
        );
        assert_eq!(issues("SET SCHEMA 'app'"), [("session_set", "high")]);
        let f = classify("SET capstone.gap_threshold = 25");
        assert_eq!(f[0].what, "SET capstone.gap_threshold (session-level)");
    }

    #[test]
    fn roles() {
        assert_eq!(issues("SET ROLE app_reader"), [("set_role", "high")]);
        assert_eq!(
            issues("SET SESSION AUTHORIZATION bob"),
            [("set_role", "high")]
        );
        assert_eq!(issues("SET LOCAL ROLE app_reader"), []);
    }

    #[test]
    fn advisory_locks_session_vs_xact() {
        assert_eq!(
            issues("SELECT pg_advisory_lock($1)"),
            [("session_advisory_lock", "high")]
        );
        assert_eq!(
            issues("select pg_catalog.pg_try_advisory_lock_shared(1, 2)"),
            [("session_advisory_lock", "high")]
        );
        assert_eq!(issues("SELECT pg_advisory_xact_lock($1)"), []);
        assert_eq!(issues("SELECT pg_try_advisory_xact_lock(42)"), []);
        assert_eq!(issues("SELECT pg_advisory_unlock($1)"), []);
        // in a string or a comment it is not a call
        assert_eq!(
            issues("SELECT 'pg_advisory_lock(1)' -- pg_advisory_lock(2)"),
            []
        );
        // inside a DO block it is
        assert_eq!(
            issues("DO $$ BEGIN PERFORM pg_advisory_lock(7); END $$"),
            [("session_advisory_lock", "high")]
        );
    }

    #[test]
    fn cursors_temp_tables_prepare_listen() {
        assert_eq!(
            issues("DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
            [("with_hold_cursor", "high")]
        );
        assert_eq!(
            issues("DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1"),
            []
        );
        assert_eq!(
            issues("CREATE TEMP TABLE t (a int)"),
            [("temp_table", "high")]
        );
        assert_eq!(
            issues("create global temporary table t as select 1"),
            [("temp_table", "high")]
        );
        assert_eq!(issues("CREATE TEMP TABLE t (a int) ON COMMIT DROP"), []);
        assert_eq!(
            issues("SELECT 1 AS a INTO TEMP t2"),
            [("temp_table", "high")]
        );
        assert_eq!(issues("CREATE TABLE temp (a int)"), []);
        assert_eq!(
            issues("PREPARE q(int) AS SELECT $1"),
            [("sql_prepare", "high")]
        );
        assert_eq!(issues("PREPARE TRANSACTION 'x'"), []);
        assert_eq!(issues("LISTEN jobs"), [("listen", "high")]);
        assert_eq!(issues("NOTIFY jobs"), []);
    }

    #[test]
    fn set_config_is_local_or_not() {
        assert_eq!(
            issues("SELECT set_config('search_path', 'x', false)"),
            [("set_config", "medium")]
        );
        assert_eq!(
            issues("SELECT set_config($1, $2, $3)"),
            [("set_config", "check")]
        );
        assert_eq!(issues("SELECT set_config('a.b', 'x', true)"), []);
    }

    #[test]
    fn quoting_and_excerpts() {
        assert_eq!(issues("SELECT \"pg_advisory_lock\" FROM t"), []);
        assert_eq!(issues("SELECT 'it''s' , pg_advisory_lock(1)").len(), 1);
        assert_eq!(issues("/* SET x = 1 */ SELECT 1"), []);
        assert_eq!(excerpt("SELECT\n  1", 80), "SELECT 1");
        assert_eq!(excerpt("abcdef", 4), "abc…");
        assert!(risk_rank("high") < risk_rank("low"));
    }
}
