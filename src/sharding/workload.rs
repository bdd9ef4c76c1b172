//! Reading `pg_stat_statements` texts: which tables a statement touches, whether it
//! reads or writes, and which columns it pins to a single value (`col = $1`, a
//! literal, or a constant in an INSERT's column list). A statement that pins the
//! distribution column goes to one shard; one that does not fans out to all.
//!
//! It walks the tokens of the shared lexer (`infra::sql_lex`), which is enough for the
//! normalized texts pg_stat_statements keeps; it reads no server state.

use crate::infra::sql_lex::{tokenize, Tok};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtKind {
    Read,
    Write,
    /// Transaction control, utility statements: not routed by key.
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analyzed {
    pub kind: StmtKind,
    /// For INSERT: the target table and its column list (None: no list, all columns).
    pub insert: Option<(String, Option<Vec<String>>)>,
    /// Tables referenced: unqualified ones, and those qualified with the schema.
    pub tables: BTreeSet<String>,
    /// Columns compared for equality with a constant or parameter.
    pub key_equality: BTreeSet<String>,
}

/// Skip a balanced parenthesis group starting at `i` (which is `(`).
fn skip_parens(t: &[Tok], mut i: usize) -> usize {
    let mut depth = 0;
    while i < t.len() {
        if t[i].is_punct('(') {
            depth += 1;
        } else if t[i].is_punct(')') {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// Is `t[i..]` a constant (value, `-value`, optionally `::type`)? Returns the index after it.
fn constant_at(t: &[Tok], i: usize, known: &BTreeSet<String>) -> Option<usize> {
    let mut j = i;
    if t.get(j).is_some_and(|x| x.is_op("-") || x.is_op("+")) {
        j += 1;
    }
    if !t.get(j).is_some_and(|x| x.is_value()) && !param_word(t, j, known) {
        return None;
    }
    j += 1;
    while t.get(j).is_some_and(|x| x.is_op("::")) && t.get(j + 1).and_then(|x| x.ident()).is_some()
    {
        j += 2;
    }
    Some(j)
}

/// Words that are never a PL/pgSQL variable standing in for a value.
const NOT_VARIABLES: &[&str] = &[
    "null",
    "true",
    "false",
    "and",
    "or",
    "not",
    "in",
    "is",
    "any",
    "all",
    "some",
    "case",
    "when",
    "then",
    "else",
    "end",
    "between",
    "like",
    "ilike",
    "similar",
    "exists",
    "array",
    "row",
    "default",
    "select",
    "from",
    "where",
    "distinct",
    "current_date",
    "current_timestamp",
    "current_time",
    "localtime",
    "localtimestamp",
    "current_user",
    "session_user",
    "user",
    "interval",
    "date",
    "timestamp",
    "time",
    "cast",
    "values",
];

/// A bare word at `i` that is no column of the schema and no keyword: a PL/pgSQL
/// variable (pg_stat_statements keeps function bodies' statements as written, e.g.
/// `WHERE p.tenant_id = t` inside a trigger), so it holds one value per call.
fn param_word(t: &[Tok], i: usize, known: &BTreeSet<String>) -> bool {
    let Some(Tok::Word(w)) = t.get(i) else {
        return false;
    };
    let qualified = i >= 1 && t[i - 1].is_punct('.');
    let called_or_qualifier = t
        .get(i + 1)
        .is_some_and(|x| x.is_punct('.') || x.is_punct('('));
    !(known.contains(w) || NOT_VARIABLES.contains(&w.as_str()) || qualified || called_or_qualifier)
}

/// Items of a comma-separated list from `i` up to the closing `)` or a stop word,
/// at depth 0: (start, end) of each.
fn list_items(t: &[Tok], mut i: usize, stop: &[&str]) -> Vec<(usize, usize)> {
    let mut items = Vec::new();
    let mut start = i;
    while i < t.len() {
        if t[i].is_punct('(') {
            i = skip_parens(t, i);
            continue;
        }
        if t[i].is_punct(')') || t[i].is_punct(';') || stop.iter().any(|s| t[i].is_word(s)) {
            break;
        }
        if t[i].is_punct(',') {
            items.push((start, i));
            start = i + 1;
        }
        i += 1;
    }
    items.push((start, i));
    items
}

const NOT_TABLES: &[&str] = &[
    "only",
    "lateral",
    "select",
    "values",
    "rows",
    "unnest",
    "generate_series",
    "with",
    "set",
    "of",
    "nowait",
    "skip",
];

/// Marks the tokens of UPDATE ... SET assignments: `SET col = $1` assigns, it does
/// not filter.
fn assignments(t: &[Tok]) -> Vec<bool> {
    let mut out = vec![false; t.len()];
    let mut depth = 0i32;
    let mut set_depth: Option<i32> = None;
    let mut seen_update = false;
    for (i, x) in t.iter().enumerate() {
        if x.is_punct('(') {
            depth += 1;
        } else if x.is_punct(')') {
            depth -= 1;
        } else if x.is_word("update") {
            seen_update = true;
        } else if x.is_word("set") && seen_update && set_depth.is_none() {
            set_depth = Some(depth);
        } else if set_depth == Some(depth)
            && (x.is_word("where")
                || x.is_word("from")
                || x.is_word("returning")
                || x.is_punct(';'))
        {
            set_depth = None;
        }
        out[i] = set_depth.is_some();
    }
    out
}

/// What a statement reads or writes and which columns it fixes to one value.
/// `known` holds the schema's column names: any other bare word compared with `=`
/// is taken for a PL/pgSQL variable, i.e. one value.
pub fn analyze(sql: &str, schema: &str, known: &BTreeSet<String>) -> Analyzed {
    let t = tokenize(sql);
    let first = t.iter().find_map(|x| match x {
        Tok::Word(w) => Some(w.as_str()),
        _ => None,
    });
    let kind = match first {
        Some("select") | Some("values") | Some("table") => StmtKind::Read,
        Some("insert") | Some("update") | Some("delete") | Some("merge") => StmtKind::Write,
        Some("with") => {
            if t.iter().any(|x| {
                x.is_word("insert")
                    || x.is_word("update")
                    || x.is_word("delete")
                    || x.is_word("merge")
            }) {
                StmtKind::Write
            } else {
                StmtKind::Read
            }
        }
        _ => StmtKind::Other,
    };
    let mut tables = BTreeSet::new();
    let mut eq = BTreeSet::new();
    if kind == StmtKind::Other {
        return Analyzed {
            kind,
            insert: None,
            tables,
            key_equality: eq,
        };
    }
    let schema_l = schema.to_string();
    // a table reference at i: schema.table or table; returns (name, next index)
    let table_at = |i: usize, into: bool| -> Option<(String, usize)> {
        let a = t.get(i)?.ident()?;
        if t.get(i + 1).is_some_and(|x| x.is_punct('.')) {
            let b = t.get(i + 2)?.ident()?;
            if a == schema_l {
                return Some((b.to_string(), i + 3));
            }
            return None;
        }
        // "name(" is a function call, except after INTO where a column list follows
        if NOT_TABLES.contains(&a) || (!into && t.get(i + 1).is_some_and(|x| x.is_punct('('))) {
            return None;
        }
        Some((a.to_string(), i + 1))
    };
    let in_set = assignments(&t);
    let mut i = 0;
    while i < t.len() {
        // schema-qualified names are table references wherever they appear
        if let (Some(a), true) = (t[i].ident(), t.get(i + 1).is_some_and(|x| x.is_punct('.'))) {
            if a == schema {
                if let Some(b) = t.get(i + 2).and_then(|x| x.ident()) {
                    tables.insert(b.to_string());
                }
            }
        }
        let is_from = t[i].is_word("from")
            || t[i].is_word("join")
            || t[i].is_word("update")
            || t[i].is_word("into")
            || t[i].is_word("using");
        if is_from {
            // a FROM list: item [AS] [alias] {, item [AS] [alias]}
            let mut j = i + 1;
            loop {
                if t.get(j)
                    .is_some_and(|x| x.is_word("only") || x.is_word("lateral"))
                {
                    j += 1;
                }
                if t.get(j).is_some_and(|x| x.is_punct('(')) {
                    j = skip_parens(&t, j);
                } else if let Some((name, next)) = table_at(j, t[i].is_word("into")) {
                    tables.insert(name);
                    j = next;
                } else {
                    break;
                }
                if t.get(j).is_some_and(|x| x.is_word("as")) {
                    j += 1;
                }
                let alias_ok = t.get(j).and_then(|x| x.ident()).is_some_and(|w| {
                    !matches!(
                        w,
                        "where"
                            | "join"
                            | "inner"
                            | "left"
                            | "right"
                            | "full"
                            | "cross"
                            | "natural"
                            | "on"
                            | "group"
                            | "order"
                            | "limit"
                            | "set"
                            | "values"
                            | "select"
                            | "returning"
                            | "using"
                            | "union"
                            | "except"
                            | "intersect"
                            | "for"
                            | "having"
                            | "window"
                            | "offset"
                            | "fetch"
                            | "default"
                            | "overriding"
                            | "on_conflict"
                            | "when"
                    )
                });
                if alias_ok {
                    j += 1;
                    if t.get(j).is_some_and(|x| x.is_punct('(')) {
                        j = skip_parens(&t, j); // alias column list
                    }
                }
                if t.get(j).is_some_and(|x| x.is_punct(','))
                    && !t[i].is_word("into")
                    && !t[i].is_word("update")
                {
                    j += 1;
                    continue;
                }
                break;
            }
        }
        // col = constant / constant = col
        if t[i].is_op("=") && !in_set[i] {
            // left side: a column reference (maybe qualified) or a constant
            let left_col = t
                .get(i.wrapping_sub(1))
                .and_then(|x| x.ident())
                .filter(|_| i >= 1 && !(i >= 2 && t[i - 2].is_op("::")));
            if let (Some(col), Some(_)) = (left_col, constant_at(&t, i + 1, known)) {
                eq.insert(col.to_string());
            }
            // right side column, left side constant (skip a cast on the left)
            let right_col = t.get(i + 1).and_then(|x| x.ident()).filter(|_| {
                !t.get(i + 2)
                    .is_some_and(|x| x.is_punct('.') || x.is_punct('('))
            });
            let right_col = match (t.get(i + 1).and_then(|x| x.ident()), t.get(i + 2)) {
                // qualified: alias.col
                (Some(_), Some(x)) if x.is_punct('.') => t.get(i + 3).and_then(|x| x.ident()),
                _ => right_col,
            };
            if let Some(col) = right_col {
                let mut j = i;
                while j >= 2 && t[j - 2].is_op("::") && t[j - 1].ident().is_some() {
                    j -= 2;
                }
                let left_const = j >= 1 && (t[j - 1].is_value() || param_word(&t, j - 1, known));
                if left_const {
                    eq.insert(col.to_string());
                }
            }
        }
        i += 1;
    }
    // INSERT INTO t (cols) VALUES (...) / SELECT ...: constants by position
    let mut insert = None;
    if let Some(p) = t.iter().position(|x| x.is_word("insert")) {
        if t.get(p + 1).is_some_and(|x| x.is_word("into")) {
            let mut j = p + 2;
            if let Some((target, next)) = table_at(j, true) {
                insert = Some((target, None));
                j = next;
                if t.get(j).is_some_and(|x| x.is_word("as")) {
                    j += 2;
                }
                if t.get(j).is_some_and(|x| x.is_punct('(')) {
                    let cols: Vec<String> = list_items(&t, j + 1, &[])
                        .iter()
                        .filter_map(|(s, _)| t.get(*s).and_then(|x| x.ident()).map(String::from))
                        .collect();
                    if let Some((_, c)) = insert.as_mut() {
                        *c = Some(cols.clone());
                    }
                    let after = skip_parens(&t, j);
                    let mut k = after;
                    if t.get(k).is_some_and(|x| x.is_word("overriding")) {
                        k += 3;
                    }
                    let items = if t.get(k).is_some_and(|x| x.is_word("values"))
                        && t.get(k + 1).is_some_and(|x| x.is_punct('('))
                    {
                        Some(list_items(&t, k + 2, &[]))
                    } else if t.get(k).is_some_and(|x| x.is_word("select")) {
                        Some(list_items(
                            &t,
                            k + 1,
                            &["from", "where", "union", "group", "order", "limit"],
                        ))
                    } else {
                        None
                    };
                    if let Some(items) = items {
                        for (col, (s, e)) in cols.iter().zip(items) {
                            if constant_at(&t, s, known) == Some(e) {
                                eq.insert(col.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    Analyzed {
        kind,
        insert,
        tables,
        key_equality: eq,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn eq(sql: &str) -> Vec<String> {
        analyze(sql, "shop", &BTreeSet::new())
            .key_equality
            .into_iter()
            .collect()
    }
    fn tables(sql: &str) -> Vec<String> {
        analyze(sql, "shop", &BTreeSet::new())
            .tables
            .into_iter()
            .collect()
    }

    #[test]
    fn equality_with_parameters_and_literals() {
        assert_eq!(
            eq("SELECT * FROM shop.orders o WHERE o.tenant_id = $1 AND o.order_id = $2"),
            vec!["order_id", "tenant_id"]
        );
        assert_eq!(
            eq("SELECT * FROM orders WHERE tenant_id = 7"),
            vec!["tenant_id"]
        );
        assert_eq!(
            eq("SELECT * FROM orders WHERE $1 = tenant_id"),
            vec!["tenant_id"]
        );
        assert_eq!(
            eq("SELECT * FROM orders WHERE $1::bigint = o.tenant_id"),
            vec!["tenant_id"]
        );
        assert_eq!(
            eq("SELECT * FROM orders WHERE tenant_id = $1::bigint"),
            vec!["tenant_id"]
        );
        assert_eq!(
            eq("SELECT * FROM orders WHERE tenant_id = -1"),
            vec!["tenant_id"]
        );
        assert_eq!(eq("SELECT * FROM orders WHERE code = 'x'"), vec!["code"]);
    }

    #[test]
    fn joins_ranges_and_strings_do_not_pin() {
        assert!(eq(
            "SELECT * FROM shop.orders o JOIN shop.order_lines l ON l.tenant_id = o.tenant_id"
        )
        .is_empty());
        assert!(eq("SELECT * FROM orders WHERE tenant_id >= $1").is_empty());
        assert!(eq("SELECT * FROM orders WHERE tenant_id IN ($1, $2)").is_empty());
        assert!(eq("SELECT 'tenant_id = 1' FROM orders").is_empty());
        assert!(eq("SELECT * FROM orders WHERE tenant_id = now()").is_empty());
        assert!(eq("SELECT * FROM orders -- WHERE tenant_id = 1\n").is_empty());
        // an assignment is not a filter
        assert_eq!(
            eq("UPDATE orders SET status = $1, note = 'x' WHERE order_id = $2"),
            vec!["order_id"]
        );
        assert_eq!(
            eq("INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET b = $2"),
            vec!["a"]
        );
    }

    #[test]
    fn tables_in_from_lists_and_dml() {
        assert_eq!(
            tables("SELECT * FROM shop.orders o, (VALUES (1)) v(n), shop.order_lines l WHERE true"),
            vec!["order_lines", "orders"]
        );
        assert_eq!(
            tables("SELECT * FROM orders o, customers c"),
            vec!["customers", "orders"]
        );
        assert_eq!(
            tables("UPDATE shop.stock SET on_hand = 1 WHERE tenant_id = $1"),
            vec!["stock"]
        );
        assert_eq!(
            tables("INSERT INTO order_lines SELECT * FROM products p"),
            vec!["order_lines", "products"]
        );
        assert_eq!(
            tables("DELETE FROM orders USING customers c WHERE true"),
            vec!["customers", "orders"]
        );
        assert_eq!(tables("SELECT * FROM other.orders"), Vec::<String>::new());
        assert_eq!(
            tables("SELECT * FROM generate_series(1, 3) g"),
            Vec::<String>::new()
        );
        assert_eq!(tables("SELECT * FROM ONLY orders"), vec!["orders"]);
        assert_eq!(
            tables("INSERT INTO orders (a, b) VALUES ($1, $2)"),
            vec!["orders"]
        );
    }

    #[test]
    fn statement_kinds() {
        let none = BTreeSet::new();
        assert_eq!(analyze("BEGIN", "shop", &none).kind, StmtKind::Other);
        assert_eq!(analyze("select 1", "shop", &none).kind, StmtKind::Read);
        assert_eq!(
            analyze(
                "WITH x AS (DELETE FROM orders RETURNING 1) SELECT 1",
                "shop",
                &none
            )
            .kind,
            StmtKind::Write
        );
        assert_eq!(
            analyze("WITH x AS (SELECT 1) SELECT * FROM x", "shop", &none).kind,
            StmtKind::Read
        );
        assert_eq!(
            analyze("/* c */ insert into t values (1)", "shop", &none).kind,
            StmtKind::Write
        );
    }

    #[test]
    fn the_lab_write_transaction_is_routable() {
        // place_order.sql as pg_stat_statements normalizes it
        let stmts = [
            "SELECT customer_lo + ($1 % customer_n) AS cid, least(product_lo + ($2 % product_n), product_lo + ($3 % product_n)) AS p1 FROM shop.lab_tenant_ranges WHERE tenant_id = $4",
            "INSERT INTO shop.orders (tenant_id, order_no, customer_id, status, fulfillment_status, payment_status,\n currency, total_cents, created_at, updated_at)\nSELECT $1, $2 || gen_random_uuid(), $3, $4, $5, $6, t.currency, $7, now(), now()\n  FROM shop.tenants t WHERE t.tenant_id = $8\nRETURNING order_id",
            "INSERT INTO shop.order_lines (tenant_id, order_id, line_no, product_id, quantity, unit_price_cents)\nSELECT $1, $2, v.n, p.product_id, $3, p.price_cents\n  FROM (VALUES ($4, $5::bigint), ($6, $7::bigint)) v(n, pid)\n  JOIN shop.products p ON p.tenant_id = $8 AND p.product_id = v.pid",
            "UPDATE shop.stock\n   SET on_hand = CASE WHEN on_hand >= $1 THEN on_hand - $2 ELSE on_hand + $3 - $4 END,\n       updated_at = now()\n WHERE tenant_id = $5 AND product_id IN ($6, $7)",
            "INSERT INTO shop.journal_entries (tenant_id, order_id, memo, posted_at)\nVALUES ($1, $2, $3, now())\nRETURNING entry_id",
        ];
        for s in stmts {
            let a = analyze(s, "shop", &BTreeSet::new());
            assert!(a.key_equality.contains("tenant_id"), "{s}: {a:?}");
            assert!(!a.tables.is_empty());
        }
        let ins = analyze(stmts[1], "shop", &BTreeSet::new());
        assert_eq!(
            ins.tables.iter().cloned().collect::<Vec<_>>(),
            vec!["orders", "tenants"]
        );
        assert!(ins.key_equality.contains("customer_id"));
        assert!(!ins.key_equality.contains("created_at"));
        let je = analyze(stmts[4], "shop", &BTreeSet::new());
        assert!(je.key_equality.contains("order_id"));
        assert!(!je.key_equality.contains("posted_at"));
    }

    #[test]
    fn plpgsql_variables_pin_a_value() {
        // a deferred trigger's query, kept by pg_stat_statements as written
        let known: BTreeSet<String> = ["tenant_id", "entry_id", "amount_cents", "posting_no"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = analyze(
            "SELECT coalesce(sum(p.amount_cents), $1), count(*) FROM shop.postings p WHERE p.tenant_id = t AND p.entry_id = e",
            "shop",
            &known,
        );
        assert_eq!(
            a.key_equality.iter().cloned().collect::<Vec<_>>(),
            vec!["entry_id", "tenant_id"]
        );
        // a bare column name on the right is a join, not a variable
        let b = analyze(
            "SELECT * FROM shop.postings WHERE tenant_id = entry_id",
            "shop",
            &known,
        );
        assert!(b.key_equality.is_empty());
        // keywords are not variables
        let c = analyze(
            "SELECT * FROM shop.postings WHERE tenant_id = NULL",
            "shop",
            &known,
        );
        assert!(c.key_equality.is_empty());
    }

    #[test]
    fn insert_targets_and_columns() {
        let none = BTreeSet::new();
        let a = analyze(
            "INSERT INTO shop.orders (tenant_id, note) VALUES ($1, now())",
            "shop",
            &none,
        );
        assert_eq!(
            a.insert,
            Some((
                "orders".to_string(),
                Some(vec!["tenant_id".to_string(), "note".to_string()])
            ))
        );
        assert_eq!(
            a.key_equality.iter().cloned().collect::<Vec<_>>(),
            vec!["tenant_id"]
        );
        let b = analyze(
            "INSERT INTO shop.orders SELECT * FROM shop.old_orders",
            "shop",
            &none,
        );
        assert_eq!(b.insert, Some(("orders".to_string(), None)));
    }

    #[test]
    fn the_global_report_fans_out() {
        let a = analyze(
            "SELECT date_trunc($1, created_at) AS day, count(*), sum(total_cents) FROM shop.orders WHERE created_at >= now() - interval $2 AND status IN ($3, $4, $5) GROUP BY 1 ORDER BY 1",
            "shop",
            &BTreeSet::new(),
        );
        assert_eq!(a.kind, StmtKind::Read);
        assert!(!a.key_equality.contains("tenant_id"));
        assert!(a.tables.contains("orders"));
    }
}
