//! A migration's statements, split by PostgreSQL itself: the raw parser on the whole text,
//! and when that fails on a syntax error, the core scanner (which knows quotes, dollar
//! quotes and comments) cuts it at `;` tokens and each piece is parsed on its own, so one
//! bad statement gets its own 42601 row with the position and the rest is still linted.

use super::form;
use super::model::{Action, Form};
use super::tree;
use crate::infra::subxact::{self, Outcome};
use pgrx::pg_sys;
use std::os::raw::c_void;

/// One statement: where it is (bytes into the migration) and what it is.
pub struct Piece {
    pub start: usize,
    pub end: usize,
    /// the statement's Action, or (SQLSTATE, message, 1-based character position) when it
    /// does not parse or its types cannot be resolved
    pub action: std::result::Result<Action, (String, String, Option<usize>)>,
    /// its form: what fails on a rerun, the tables it names without a schema
    pub form: Form,
}

unsafe extern "C-unwind" fn remember_position(arg: *mut c_void) {
    // called by errfinish while the error is being raised: the cursor position is still there
    *(arg as *mut i32) = pg_sys::geterrposition();
}

/// Parse `sql` with the raw parser, catching a syntax error with its cursor position.
unsafe fn parse(
    sql: &str,
) -> std::result::Result<Vec<(usize, usize, *mut pg_sys::Node)>, (String, String, Option<usize>)> {
    let c = std::ffi::CString::new(sql).map_err(|_| {
        (
            "22023".to_string(),
            "the migration must not contain NUL bytes".to_string(),
            None,
        )
    })?;
    let mut pos: i32 = 0;
    let prev = pg_sys::error_context_stack;
    let mut cb = pg_sys::ErrorContextCallback {
        previous: prev,
        callback: Some(remember_position),
        arg: &mut pos as *mut i32 as *mut c_void,
    };
    pg_sys::error_context_stack = &mut cb;
    let r = subxact::run(Outcome::Commit, || {
        pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT)
    });
    pg_sys::error_context_stack = prev;
    match r {
        Ok(list) => Ok(raw_list(list, sql.len())),
        Err(e) => {
            let (code, msg) = subxact::describe(&e);
            Err((code, msg, if pos > 0 { Some(pos as usize) } else { None }))
        }
    }
}

unsafe fn raw_list(list: *mut pg_sys::List, len: usize) -> Vec<(usize, usize, *mut pg_sys::Node)> {
    crate::infra::parse::list_ptrs::<pg_sys::RawStmt>(list)
        .into_iter()
        .map(|raw| {
            let start = ((*raw).stmt_location.max(0) as usize).min(len);
            let end = if (*raw).stmt_len <= 0 {
                len
            } else {
                (start + (*raw).stmt_len as usize).min(len)
            };
            (start, end, (*raw).stmt)
        })
        .collect()
}

/// Byte offsets of the `;` tokens of `sql`, by PostgreSQL's core scanner.
unsafe fn semicolons(sql: &str) -> Vec<usize> {
    let Ok(c) = std::ffi::CString::new(sql) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let out_ref = &mut out;
    let _ = subxact::run(Outcome::Commit, move || {
        let mut extra: pg_sys::core_yy_extra_type = std::mem::zeroed();
        let scanner = pg_sys::scanner_init(
            c.as_ptr(),
            &mut extra,
            std::ptr::addr_of!(pg_sys::ScanKeywords),
            std::ptr::addr_of!(pg_sys::ScanKeywordTokens) as *const u16,
        );
        let mut val: pg_sys::core_YYSTYPE = std::mem::zeroed();
        let mut loc: i32 = 0;
        loop {
            let tok = pg_sys::core_yylex(&mut val, &mut loc, scanner);
            if tok == 0 {
                break;
            }
            if tok == b';' as i32 {
                out_ref.push(loc.max(0) as usize);
            }
        }
        pg_sys::scanner_finish(scanner);
    });
    out
}

unsafe fn analyze(start: usize, end: usize, node: *mut pg_sys::Node) -> Piece {
    match subxact::run(Outcome::Commit, || (tree::action(node), form::form(node))) {
        Ok((action, form)) => Piece {
            start,
            end,
            action: Ok(action),
            form,
        },
        Err(e) => {
            let (code, msg) = subxact::describe(&e);
            Piece {
                start,
                end,
                action: Err((code, msg, None)),
                form: Form::default(),
            }
        }
    }
}

/// How many following pieces an incomplete one may grow over.
const MAX_GROWTH: usize = 200;

/// Is a syntax error's position (1-based characters) at the end of `text`: the parser
/// wanted more input?
fn at_end(text: &str, pos: Option<usize>) -> bool {
    let n = text.trim_end().chars().count();
    pos.is_some_and(|p| p >= n)
}

/// The statements of `sql`, in order.
pub fn pieces(sql: &str) -> Vec<Piece> {
    // SAFETY: raw parser and scanner on NUL-terminated copies; nodes read in this context
    unsafe {
        if let Ok(stmts) = parse(sql) {
            return stmts
                .into_iter()
                .map(|(start, end, n)| analyze(start, end, n))
                .collect();
        }
        let mut cuts = semicolons(sql);
        cuts.push(sql.len());
        let mut out = Vec::new();
        let mut start = 0usize;
        let mut k = 0usize;
        while k < cuts.len() {
            let mut end = (cuts[k] + 1).min(sql.len());
            k += 1;
            let Some(text) = sql.get(start..end) else {
                continue;
            };
            let piece_start = start;
            let mut parsed = parse(text);
            // a piece that ends too early (a `;` inside BEGIN ATOMIC ... END, say) grows
            // over the next pieces while the parser keeps wanting more at the very end; if
            // it never completes, the first piece's own error stands and the rest is linted
            let mut wants_more = matches!(&parsed, Err(e) if at_end(text, e.2));
            let mut grown = 0;
            while wants_more && k + grown < cuts.len() && grown < MAX_GROWTH {
                let longer_end = (cuts[k + grown] + 1).min(sql.len());
                let Some(longer) = sql.get(start..longer_end) else {
                    break;
                };
                grown += 1;
                match parse(longer) {
                    Ok(stmts) => {
                        parsed = Ok(stmts);
                        end = longer_end;
                        k += grown;
                        break;
                    }
                    Err(e) => wants_more = at_end(longer, e.2),
                }
            }
            start = end;
            match parsed {
                Ok(stmts) => {
                    for (s, e, n) in stmts {
                        out.push(analyze(piece_start + s, piece_start + e, n));
                    }
                }
                Err((code, msg, pos)) => {
                    // the position counts characters of this piece; make it the migration's
                    let before = sql
                        .get(..piece_start)
                        .map(|s| s.chars().count())
                        .unwrap_or(0);
                    out.push(Piece {
                        start: piece_start,
                        end,
                        action: Err((code, msg, pos.map(|p| p + before))),
                        form: Form::default(),
                    });
                }
            }
        }
        out
    }
}
