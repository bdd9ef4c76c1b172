//! The SQL of one backfill batch: a keyset range found by an index scan, then an UPDATE
//! of exactly that range. Pure text building (no server), unit-tested; it never runs SQL.

/// The two statements of a batch. `bound` finds the batch's last key with an
/// index range scan (keyset from the last committed key, `LIMIT n`); `update`
/// then updates exactly that key range, with both ends passed as parameters so
/// the planner sees real values and uses the key's index. `first` batches have
/// no lower bound.
pub fn batch_sql(
    rel: &str,
    keys: &[String],
    set_clause: &str,
    where_clause: Option<&str>,
    first: bool,
) -> (String, String) {
    // always quoted: pure Rust (unit-testable without a server) and valid for any name
    let q: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.replace('"', "\"\"")))
        .collect();
    let tuple = |prefix: &str| {
        format!(
            "({})",
            q.iter()
                .map(|c| format!("{prefix}{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let param = |p: usize| {
        format!(
            "({})",
            (1..=keys.len())
                .map(|i| format!("${p}[{i}]"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let lower = |prefix: &str| {
        if first {
            String::new()
        } else {
            format!("{} OPERATOR(pg_catalog.>) {} AND ", tuple(prefix), param(1))
        }
    };
    let order = q.join(", ");
    let desc = q
        .iter()
        .map(|c| format!("{c} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    let bound = format!(
        "SELECT ARRAY[{order}]::bigint[] FROM (SELECT {order} FROM {rel} WHERE {}{} OPERATOR(pg_catalog.<=) {} ORDER BY {order} LIMIT $3) b
          ORDER BY {desc} LIMIT 1",
        lower(""),
        tuple(""),
        param(2),
    );
    let update = format!(
        "WITH u AS (UPDATE {rel} t SET {set_clause}\n WHERE {}{} OPERATOR(pg_catalog.<=) {} AND ({}\n) RETURNING 1) SELECT pg_catalog.count(*) FROM u",
        lower("t."),
        tuple("t."),
        param(2),
        where_clause.unwrap_or("true"),
    );
    (bound, update)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn batch_sql_is_keyset_not_offset() {
        let (b, u) = batch_sql(
            "shop.orders",
            &["tenant_id".into(), "order_id".into()],
            "x = 1",
            None,
            false,
        );
        assert!(b.contains(r#"("tenant_id", "order_id") OPERATOR(pg_catalog.>) ($1[1], $1[2])"#));
        assert!(b.contains(r#"("tenant_id", "order_id") OPERATOR(pg_catalog.<=) ($2[1], $2[2])"#));
        assert!(b.contains(r#"ORDER BY "tenant_id", "order_id" LIMIT $3"#));
        assert!(u.contains(r#"(t."tenant_id", t."order_id") OPERATOR(pg_catalog.>) ($1[1], $1[2]) AND (t."tenant_id", t."order_id") OPERATOR(pg_catalog.<=) ($2[1], $2[2])"#));
        assert!(!b.to_uppercase().contains("OFFSET") && !u.to_uppercase().contains("OFFSET"));
        let (fb, fu) = batch_sql("t", &["id".into()], "x = 1", Some("y IS NULL"), true);
        assert!(!fb.contains("$1") && !fu.contains("$1"));
        assert!(fu.contains("AND (y IS NULL\n)"));
    }
}
