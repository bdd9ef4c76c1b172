//! The linter's catalog reads (SPI and syscache, read-only, cached per lint): table sizes
//! (pg_relation_size, pg_total_relation_size, reltuples), column types and NOT NULL proofs
//! (validated CHECKs read from pg_constraint.conbin as expression trees), function
//! volatility (pg_proc.provolatile), binary coercibility (pg_cast via IsBinaryCoercible).

use super::model::*;
use super::rules::Facts;
use pgrx::prelude::*;
use std::collections::HashMap;

#[derive(Default)]
pub struct Catalog {
    oids: HashMap<Name, Option<u32>>,
    tables: HashMap<Name, TableFacts>,
    columns: HashMap<(Name, String), ColumnFacts>,
    funcs: HashMap<Name, bool>,
}

/// The server's major version and whether TimeZone is UTC.
/// Is a statement_timeout (or, on PostgreSQL 17+, a transaction_timeout) in force in this
/// session? safe_ddl's statement runs here, so this is what bounds it.
pub fn statement_timeout_in_force() -> bool {
    // SAFETY: reading this backend's GUC variables
    unsafe {
        #[cfg(any(feature = "pg17", feature = "pg18"))]
        if pg_sys::TransactionTimeout > 0 {
            return true;
        }
        pg_sys::StatementTimeout > 0
    }
}

pub fn server() -> (u32, bool) {
    let major = Spi::get_one::<i32>(
        "SELECT pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog./) 10000",
    )
    .ok()
    .flatten()
    .unwrap_or(16) as u32;
    let tz = Spi::get_one::<String>("SELECT pg_catalog.current_setting('TimeZone')")
        .ok()
        .flatten()
        .unwrap_or_default();
    (
        major,
        matches!(
            tz.as_str(),
            "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Zulu" | "UCT"
        ),
    )
}

impl Catalog {
    fn oid(&mut self, t: &Name) -> Option<u32> {
        if let Some(o) = self.oids.get(t) {
            return *o;
        }
        let sql = t.sql();
        // the name resolves as the migration will resolve it: on the caller's search_path
        let o = crate::infra::search_path::as_caller(|| {
            Spi::get_one_with_args::<pg_sys::Oid>(
                "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
                &[sql.into()],
            )
        })
        .ok()
        .flatten()
        .map(u32::from);
        self.oids.insert(t.clone(), o);
        o
    }
}

/// Does the stored CHECK expression (nodeToString form) prove `attnum IS NOT NULL`?
unsafe fn proves_not_null(conbin: &str, attnum: i16) -> bool {
    let Ok(c) = std::ffi::CString::new(conbin) else {
        return false;
    };
    let n = pg_sys::stringToNode(c.as_ptr()) as *mut pg_sys::Node;
    unsafe fn test(n: *mut pg_sys::Node, attnum: i16) -> bool {
        if n.is_null() {
            return false;
        }
        match (*n).type_ {
            pg_sys::NodeTag::T_NullTest => {
                let t = n as *mut pg_sys::NullTest;
                let a = (*t).arg as *mut pg_sys::Node;
                (*t).nulltesttype == pg_sys::NullTestType::IS_NOT_NULL
                    && !a.is_null()
                    && (*a).type_ == pg_sys::NodeTag::T_Var
                    && (*(a as *mut pg_sys::Var)).varattno == attnum
            }
            pg_sys::NodeTag::T_BoolExpr => {
                let b = n as *mut pg_sys::BoolExpr;
                if (*b).boolop != pg_sys::BoolExprType::AND_EXPR || (*b).args.is_null() {
                    return false;
                }
                crate::infra::parse::list_ptrs((*b).args)
                    .into_iter()
                    .any(|a| test(a, attnum))
            }
            // a CHECK is stored as an implicit-AND list
            pg_sys::NodeTag::T_List => crate::infra::parse::list_ptrs(n as *mut pg_sys::List)
                .into_iter()
                .any(|a| test(a, attnum)),
            _ => false,
        }
    }
    test(n, attnum)
}

impl Facts for Catalog {
    fn table(&mut self, t: &Name) -> TableFacts {
        if let Some(f) = self.tables.get(t) {
            return f.clone();
        }
        let f = match self.oid(t) {
            None => TableFacts::default(),
            Some(oid) => Spi::get_three_with_args::<i64, i64, f64>(
                "SELECT pg_catalog.pg_relation_size(c.oid), pg_catalog.pg_total_relation_size(c.oid),
                        c.reltuples::pg_catalog.float8
                   FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
                &[pg_sys::Oid::from(oid).into()],
            )
            .ok()
            .map(|(h, t, r)| TableFacts {
                exists: true,
                heap_bytes: h.unwrap_or(0),
                total_bytes: t.unwrap_or(0),
                rows: r.unwrap_or(0.0),
            })
            .unwrap_or_default(),
        };
        self.tables.insert(t.clone(), f.clone());
        f
    }

    fn column(&mut self, t: &Name, col: &str) -> ColumnFacts {
        let k = (t.clone(), col.to_string());
        if let Some(c) = self.columns.get(&k) {
            return c.clone();
        }
        let f = self
            .oid(t)
            .and_then(|oid| {
                Spi::connect(|c| {
                    let r = c.select(
                        "SELECT a.atttypid, a.atttypmod, a.attnum,
                                a.attnotnull AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint n
                                   WHERE n.conrelid OPERATOR(pg_catalog.=) a.attrelid AND n.contype OPERATOR(pg_catalog.=) 'n'
                                     AND NOT n.convalidated AND a.attnum OPERATOR(pg_catalog.=) ANY (n.conkey)),
                                EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) a.attrelid
                                         AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[])),
                                EXISTS (SELECT FROM pg_catalog.pg_constraint q WHERE q.conrelid OPERATOR(pg_catalog.=) a.attrelid
                                         AND q.contype OPERATOR(pg_catalog.=) 'c' AND a.attnum OPERATOR(pg_catalog.=) ANY (q.conkey)),
                                ARRAY(SELECT k.conbin::pg_catalog.text FROM pg_catalog.pg_constraint k
                                       WHERE k.conrelid OPERATOR(pg_catalog.=) a.attrelid AND k.contype OPERATOR(pg_catalog.=) 'c'
                                         AND k.convalidated AND k.conbin IS NOT NULL)
                           FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2
                            AND NOT a.attisdropped AND a.attnum OPERATOR(pg_catalog.>) 0",
                        Some(1),
                        &[pg_sys::Oid::from(oid).into(), col.into()],
                    )?;
                    if t_is_empty(&r) {
                        return Ok::<_, pgrx::spi::Error>(None);
                    }
                    let row = r.first();
                    let typ: Option<pg_sys::Oid> = row.get(1)?;
                    let typmod: Option<i32> = row.get(2)?;
                    let attnum: Option<i16> = row.get(3)?;
                    let nn: Option<bool> = row.get(4)?;
                    let indexed: Option<bool> = row.get(5)?;
                    let in_check: Option<bool> = row.get(6)?;
                    let checks: Option<Vec<String>> = row.get(7)?;
                    let attnum = attnum.unwrap_or(0);
                    // SAFETY: conbin is a stored expression tree read back with stringToNode
                    let checked = checks
                        .unwrap_or_default()
                        .iter()
                        .any(|b| unsafe { proves_not_null(b, attnum) });
                    Ok(Some(ColumnFacts {
                        exists: true,
                        type_oid: typ.map(u32::from).unwrap_or(0),
                        typmod: typmod.unwrap_or(-1),
                        not_null: nn.unwrap_or(false),
                        checked_not_null: checked,
                        indexed: indexed.unwrap_or(false),
                        in_check: in_check.unwrap_or(false),
                    }))
                })
                .ok()
                .flatten()
            })
            .unwrap_or_default();
        self.columns.insert(k, f.clone());
        f
    }

    fn volatile(&mut self, e: &Expr) -> bool {
        if e.opaque {
            return true;
        }
        let mut any = false;
        for f in &e.funcs {
            if let Some(v) = self.funcs.get(f) {
                any |= *v;
                continue;
            }
            // the most volatile of the functions (or operators) of that name; an unknown
            // function (created later in the migration) counts as volatile
            let v = if let Some(op) = f.name.strip_prefix("operator:") {
                Spi::get_one_with_args::<bool>(
                    "SELECT pg_catalog.bool_or(p.provolatile OPERATOR(pg_catalog.=) 'v')
                       FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) o.oprcode
                      WHERE o.oprname OPERATOR(pg_catalog.=) $1",
                    &[op.into()],
                )
            } else {
                Spi::get_one_with_args::<bool>(
                    "SELECT pg_catalog.bool_or(p.provolatile OPERATOR(pg_catalog.=) 'v')
                       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
                      WHERE p.proname OPERATOR(pg_catalog.=) $1 AND ($2::pg_catalog.text IS NULL OR n.nspname OPERATOR(pg_catalog.=) $2)",
                    &[f.name.clone().into(), f.schema.clone().into()],
                )
            }
            .ok()
            .flatten()
            .unwrap_or(true);
            self.funcs.insert(f.clone(), v);
            any |= v;
        }
        any
    }

    fn coercible(&mut self, from: u32, to: u32) -> bool {
        // SAFETY: a syscache lookup of pg_cast; raises nothing for unknown oids
        unsafe { pg_sys::IsBinaryCoercible(pg_sys::Oid::from(from), pg_sys::Oid::from(to)) }
    }

    fn misfits(&mut self, t: &Name, col: &str, ty: &TypeSpec) -> Option<i64> {
        let oid = self.oid(t)?;
        if ty.oid == 0 {
            return None;
        }
        // the relation as a qualified name and the type as format_type prints it: no text
        // from the migration goes into the query but the column, quoted
        let rel = Spi::get_one_with_args::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[pg_sys::Oid::from(oid).into()],
        )
        .ok()
        .flatten()?;
        let c = pgrx::spi::quote_identifier(col);
        let sql = format!(
            "SELECT pg_catalog.count(*) FROM {rel} WHERE ({c})::{} IS DISTINCT FROM {c}",
            ty.display
        );
        // read as the caller, in a subtransaction: no privilege or a failing cast is "unknown"
        crate::infra::subxact::run(crate::infra::subxact::Outcome::Rollback, || {
            crate::infra::search_path::pinned(|| Spi::get_one::<i64>(&sql))
        })
        .ok()
        .and_then(|r| r.ok())
        .flatten()
    }

    fn category(&mut self, oid: u32) -> char {
        Spi::get_one_with_args::<String>(
            "SELECT t.typcategory::pg_catalog.text FROM pg_catalog.pg_type t WHERE t.oid OPERATOR(pg_catalog.=) $1",
            &[pg_sys::Oid::from(oid).into()],
        )
        .ok()
        .flatten()
        .and_then(|s| s.chars().next())
        .unwrap_or('X')
    }

    fn constraint_kind(&mut self, t: &Name, name: &str) -> Option<(char, i64)> {
        let oid = self.oid(t)?;
        Spi::get_two_with_args::<String, i64>(
            "SELECT c.contype::pg_catalog.text,
                    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_constraint f
                      WHERE f.contype OPERATOR(pg_catalog.=) 'f' AND c.contype OPERATOR(pg_catalog.=) ANY ('{p,u}')
                        AND f.confrelid OPERATOR(pg_catalog.=) c.conrelid AND f.conindid OPERATOR(pg_catalog.=) c.conindid)
               FROM pg_catalog.pg_constraint c
              WHERE c.conrelid OPERATOR(pg_catalog.=) $1 AND c.conname OPERATOR(pg_catalog.=) $2",
            &[pg_sys::Oid::from(oid).into(), name.into()],
        )
        .ok()
        .and_then(|(k, n)| Some((k?.chars().next()?, n.unwrap_or(0))))
    }

    fn index_table(&mut self, index: &Name) -> Option<Name> {
        let oid = self.oid(index)?;
        Spi::get_two_with_args::<String, String>(
            "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indrelid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE i.indexrelid OPERATOR(pg_catalog.=) $1",
            &[pg_sys::Oid::from(oid).into()],
        )
        .ok()
        .and_then(|(s, n)| Some(Name::new(s, n?)))
    }
}

fn t_is_empty(t: &pgrx::spi::SpiTupleTable<'_>) -> bool {
    t.is_empty()
}
