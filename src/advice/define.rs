//! Turn one CREATE INDEX statement into a hypothetical index definition: parse it,
//! resolve the table, columns, expressions, operator classes and options against the
//! catalog, and refuse what the planner could not cost. Builds nothing for the planner.

use super::store::{self, Column, HypoIndex};
use crate::infra::error::{CapstoneError, Result};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{CStr, CString};

unsafe extern "C-unwind" {
    // parser/parse_utilcmd.h, not in pgrx's bindings; called through pg_guard_ffi_boundary
    fn transformIndexStmt(
        relid: pg_sys::Oid,
        stmt: *mut pg_sys::IndexStmt,
        query_string: *const std::ffi::c_char,
    ) -> *mut pg_sys::IndexStmt;
}

/// Access methods whose cost estimators work on a hypothetical index.
const SUPPORTED_AMS: [pg_sys::Oid; 6] = [
    pg_sys::BTREE_AM_OID,
    pg_sys::HASH_AM_OID,
    pg_sys::BRIN_AM_OID,
    pg_sys::GIST_AM_OID,
    pg_sys::GIN_AM_OID,
    pg_sys::SPGIST_AM_OID,
];
const INDEX_MAX_KEYS: usize = 32;
const NAMEDATALEN: usize = 64;

fn syntax(msg: impl Into<String>) -> crate::infra::error::Failure {
    CapstoneError::Syntax(msg.into()).with_hint("pass exactly one CREATE INDEX statement")
}

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

unsafe fn list_nodes(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    unsafe { crate::infra::parse::list_ptrs(list) }
}

unsafe fn is_a(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    !node.is_null() && unsafe { (*node).type_ } == tag
}

/// Parse `sql` and define the hypothetical index it describes.
pub fn define(sql: &str) -> Result<HypoIndex> {
    let stmts = crate::infra::parse::raw_statements(sql, "create_index_sql");
    if stmts.is_empty() {
        return Err(syntax("create_index_sql holds no statement"));
    }
    if stmts.len() > 1 {
        return Err(syntax(format!(
            "create_index_sql must be exactly one CREATE INDEX statement (got {})",
            stmts.len()
        )));
    }
    let node = stmts[0];
    // SAFETY: a raw parse-tree node from raw_parser
    if !unsafe { is_a(node, pg_sys::NodeTag::T_IndexStmt) } {
        return Err(CapstoneError::NotSupported(
            "create_index_sql is not a CREATE INDEX statement".into(),
        )
        .with_hint("hypo_index takes CREATE INDEX ... ON table (columns)"));
    }
    if store::count() >= store::MAX_INDEXES {
        return Err(CapstoneError::InsufficientResources(format!(
            "this session already holds {} hypothetical indexes",
            store::MAX_INDEXES
        ))
        .with_hint("drop some with capstone.hypo_drop(id) or capstone.hypo_reset()"));
    }
    // SAFETY: node is an IndexStmt (checked above)
    unsafe { define_stmt(node as *mut pg_sys::IndexStmt, sql) }
}

unsafe fn define_stmt(raw: *mut pg_sys::IndexStmt, sql: &str) -> Result<HypoIndex> {
    unsafe {
        let rv = (*raw).relation;
        let relname = cstr((*rv).relname);
        // raises 42P01 for a missing table; the lock holds until the transaction ends
        let relid = pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::AccessShareLock as i32,
            0,
            None,
            std::ptr::null_mut(),
        );
        check_relkind(relid, &relname)?;
        if pg_sys::pg_class_aclcheck(
            relid,
            pg_sys::GetUserId(),
            pg_sys::ACL_SELECT as pg_sys::AclMode,
        ) != pg_sys::AclResult::ACLCHECK_OK
        {
            return Err(CapstoneError::InsufficientPrivilege(format!(
                "permission denied for table {relname}"
            ))
            .with_hint("a hypothetical index needs SELECT on its table"));
        }
        let am_name = cstr((*raw).accessMethod);
        let am_c = CString::new(am_name.clone()).unwrap_or_default();
        let relam = pg_sys::get_am_oid(am_c.as_ptr(), true);
        if relam == pg_sys::InvalidOid {
            return Err(CapstoneError::UndefinedObject(format!(
                "access method \"{am_name}\" does not exist"
            ))
            .into());
        }
        let routine = pg_sys::GetIndexAmRoutineByAmId(relam, true);
        if routine.is_null() {
            return Err(CapstoneError::WrongObjectType(format!(
                "access method \"{am_name}\" is not an index access method"
            ))
            .into());
        }
        if !SUPPORTED_AMS.contains(&relam) {
            return Err(CapstoneError::NotSupported(format!(
                "hypothetical indexes do not support access method \"{am_name}\""
            ))
            .with_hint("use btree, hash, brin, gist, gin or spgist"));
        }
        let src = sql_ptr(sql);
        let stmt = pg_sys::ffi::pg_guard_ffi_boundary(|| transformIndexStmt(relid, raw, src));
        let nkey = list_nodes((*stmt).indexParams).len();
        let ninc = list_nodes((*stmt).indexIncludingParams).len();
        if nkey + ninc > INDEX_MAX_KEYS {
            return Err(CapstoneError::InvalidParameter(format!(
                "an index may have at most {INDEX_MAX_KEYS} columns (got {})",
                nkey + ninc
            ))
            .into());
        }
        if nkey > 1 && !(*routine).amcanmulticol {
            return Err(CapstoneError::NotSupported(format!(
                "access method \"{am_name}\" does not support multicolumn indexes"
            ))
            .into());
        }
        if ninc > 0 && !(*routine).amcaninclude {
            return Err(CapstoneError::NotSupported(format!(
                "access method \"{am_name}\" does not support included columns"
            ))
            .into());
        }
        if (*stmt).unique && !(*routine).amcanunique {
            return Err(CapstoneError::NotSupported(format!(
                "access method \"{am_name}\" does not support unique indexes"
            ))
            .into());
        }
        let mut columns = Vec::with_capacity(nkey + ninc);
        let mut exprs: *mut pg_sys::List = std::ptr::null_mut();
        let mut name_parts = Vec::new();
        for (i, elem) in list_nodes((*stmt).indexParams)
            .into_iter()
            .chain(list_nodes((*stmt).indexIncludingParams))
            .enumerate()
        {
            let key = i < nkey;
            let col = column(
                relid,
                relam,
                &am_name,
                routine,
                elem as *mut pg_sys::IndexElem,
                key,
                &mut exprs,
                &mut name_parts,
            )?;
            columns.push(col);
        }
        let exprs_text = if exprs.is_null() {
            String::new()
        } else {
            let folded = pg_sys::eval_const_expressions(std::ptr::null_mut(), exprs.cast());
            pg_sys::fix_opfuncids(folded);
            cstr(pg_sys::nodeToString(folded.cast()))
        };
        let pred_text = if (*stmt).whereClause.is_null() {
            String::new()
        } else {
            let folded = pg_sys::eval_const_expressions(std::ptr::null_mut(), (*stmt).whereClause);
            let canon = pg_sys::canonicalize_qual(folded.cast(), false);
            pg_sys::fix_opfuncids(canon.cast());
            let list = pg_sys::make_ands_implicit(canon);
            cstr(pg_sys::nodeToString(list.cast()))
        };
        let (fillfactor, pages_per_range) = options((*stmt).options, relam)?;
        let brin_minmax = relam == pg_sys::BRIN_AM_OID
            && columns
                .first()
                .map(|c| opclass_name(c.opclass).contains("minmax"))
                .unwrap_or(true);
        let oid = free_oid()?;
        let given = cstr((*raw).idxname);
        let name = if given.is_empty() {
            let schema = cstr((*rv).schemaname);
            let mut n = format!("<{}>{}_", oid.to_u32(), am_name);
            if !schema.is_empty() && schema != "public" {
                n.push_str(&schema);
                n.push('_');
            }
            n.push_str(&relname);
            for p in &name_parts {
                n.push('_');
                n.push_str(p);
            }
            n
        } else {
            given
        };
        Ok(HypoIndex {
            oid,
            name: truncate_name(&name),
            relid,
            relam,
            am_name,
            columns,
            nkeycolumns: nkey,
            exprs: exprs_text,
            pred: pred_text,
            unique: (*stmt).unique,
            nulls_not_distinct: (*stmt).nulls_not_distinct,
            fillfactor,
            pages_per_range,
            brin_minmax,
            definition: sql.trim().trim_end_matches(';').trim().to_string(),
        })
    }
}

/// transformIndexStmt wants the statement's source text for error positions.
fn sql_ptr(sql: &str) -> *const std::ffi::c_char {
    let c = CString::new(sql).unwrap_or_default();
    // SAFETY: pstrdup copies into the current memory context, which outlives the call
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

fn check_relkind(relid: pg_sys::Oid, relname: &str) -> Result<()> {
    // SAFETY: a catalog lookup by OID
    let kind = unsafe { pg_sys::get_rel_relkind(relid) } as u8;
    match kind {
        b'r' | b'm' => Ok(()),
        b'p' => Err(
            CapstoneError::NotSupported(format!("\"{relname}\" is a partitioned table"))
                .with_hint("create the hypothetical index on each partition"),
        ),
        b'v' => Err(
            CapstoneError::WrongObjectType(format!("\"{relname}\" is a view"))
                .with_hint("index the view's base table"),
        ),
        b'f' => Err(
            CapstoneError::WrongObjectType(format!("\"{relname}\" is a foreign table"))
                .with_hint("foreign tables cannot have indexes"),
        ),
        _ => Err(CapstoneError::WrongObjectType(format!(
            "\"{relname}\" is not a table or materialized view"
        ))
        .into()),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn column(
    relid: pg_sys::Oid,
    relam: pg_sys::Oid,
    am_name: &str,
    routine: *mut pg_sys::IndexAmRoutine,
    elem: *mut pg_sys::IndexElem,
    key: bool,
    exprs: &mut *mut pg_sys::List,
    name_parts: &mut Vec<String>,
) -> Result<Column> {
    unsafe {
        let mut attnum: i32 = 0;
        let mut typid = pg_sys::InvalidOid;
        let mut typmod: i32 = -1;
        let mut collation = pg_sys::InvalidOid;
        let mut width: i32;
        if !(*elem).name.is_null() {
            let name = cstr((*elem).name);
            let a = pg_sys::get_attnum(relid, (*elem).name);
            if a == 0 {
                return Err(CapstoneError::UndefinedColumn(format!(
                    "column \"{name}\" does not exist"
                ))
                .with_hint("check the column names of the table"));
            }
            if a < 0 {
                return Err(CapstoneError::NotSupported(
                    "an index on a system column is not supported".into(),
                )
                .into());
            }
            attnum = i32::from(a);
            pg_sys::get_atttypetypmodcoll(relid, a, &mut typid, &mut typmod, &mut collation);
            width = attr_width(relid, a, typid, typmod);
            name_parts.push(name);
        } else {
            if !key {
                return Err(CapstoneError::NotSupported(
                    "expressions are not supported in included columns".into(),
                )
                .into());
            }
            let mut expr = (*elem).expr;
            while is_a(expr, pg_sys::NodeTag::T_CollateExpr) {
                expr = (*(expr as *mut pg_sys::CollateExpr)).arg.cast();
            }
            typid = pg_sys::exprType((*elem).expr);
            typmod = pg_sys::exprTypmod((*elem).expr);
            collation = pg_sys::exprCollation((*elem).expr);
            if is_a(expr, pg_sys::NodeTag::T_Var) && (*(expr as *mut pg_sys::Var)).varattno > 0 {
                let a = (*(expr as *mut pg_sys::Var)).varattno;
                attnum = i32::from(a);
                width = attr_width(relid, a, typid, typmod);
            } else {
                *exprs = pg_sys::lappend(*exprs, (*elem).expr.cast());
                width = expr_width(relid, expr, typid, typmod);
            }
            name_parts.push("expr".into());
        }
        if !key {
            if !(*elem).collation.is_null() || !(*elem).opclass.is_null() {
                return Err(CapstoneError::NotSupported(
                    "included columns take no collation or operator class".into(),
                )
                .into());
            }
            if (*elem).ordering != pg_sys::SortByDir::SORTBY_DEFAULT
                || (*elem).nulls_ordering != pg_sys::SortByNulls::SORTBY_NULLS_DEFAULT
            {
                return Err(CapstoneError::NotSupported(
                    "included columns take no ASC/DESC or NULLS FIRST/LAST".into(),
                )
                .into());
            }
            return Ok(Column {
                attnum,
                typid,
                typmod,
                collation,
                opfamily: pg_sys::InvalidOid,
                opcintype: pg_sys::InvalidOid,
                opclass: pg_sys::InvalidOid,
                descending: false,
                nulls_first: false,
                width,
            });
        }
        if !(*elem).collation.is_null() {
            collation = pg_sys::get_collation_oid((*elem).collation, false);
        }
        if pg_sys::type_is_collatable(typid) && collation == pg_sys::InvalidOid {
            return Err(CapstoneError::InvalidParameter(
                "could not determine which collation to use for an index expression".into(),
            )
            .with_hint("use the COLLATE clause to set the collation explicitly"));
        }
        let am_c = CString::new(am_name).unwrap_or_default();
        // raises 42704 for an unknown or unsuitable operator class
        let opclass = pg_sys::ResolveOpClass((*elem).opclass, typid, am_c.as_ptr(), relam);
        let opfamily = pg_sys::get_opclass_family(opclass);
        let opcintype = pg_sys::get_opclass_input_type(opclass);
        let descending = (*elem).ordering == pg_sys::SortByDir::SORTBY_DESC;
        let ordered = (*elem).ordering != pg_sys::SortByDir::SORTBY_DEFAULT
            || (*elem).nulls_ordering != pg_sys::SortByNulls::SORTBY_NULLS_DEFAULT;
        if ordered && !(*routine).amcanorder {
            return Err(CapstoneError::NotSupported(format!(
                "access method \"{am_name}\" does not support ASC/DESC or NULLS FIRST/LAST"
            ))
            .into());
        }
        let nulls_first = match (*elem).nulls_ordering {
            pg_sys::SortByNulls::SORTBY_NULLS_FIRST => true,
            pg_sys::SortByNulls::SORTBY_NULLS_LAST => false,
            _ => descending,
        };
        if width < 0 {
            width = 0;
        }
        Ok(Column {
            attnum,
            typid,
            typmod,
            collation,
            opfamily,
            opcintype,
            opclass,
            descending,
            nulls_first,
            width,
        })
    }
}

/// The column's average width from ANALYZE, else its type's typical width.
unsafe fn attr_width(relid: pg_sys::Oid, attnum: i16, typid: pg_sys::Oid, typmod: i32) -> i32 {
    unsafe {
        let w = pg_sys::get_attavgwidth(relid, attnum);
        if w > 0 {
            w
        } else {
            pg_sys::get_typavgwidth(typid, typmod)
        }
    }
}

/// An expression's width: what the column gives for md5/lower/upper of a column,
/// else the type's typical width (50 for variable-width types, as hypopg guesses).
unsafe fn expr_width(
    relid: pg_sys::Oid,
    expr: *mut pg_sys::Node,
    typid: pg_sys::Oid,
    typmod: i32,
) -> i32 {
    unsafe {
        if is_a(expr, pg_sys::NodeTag::T_FuncExpr) {
            let f = expr as *mut pg_sys::FuncExpr;
            let funcid = (*f).funcid.to_u32();
            if funcid == 2311 {
                return 32; // md5(text)
            }
            if funcid == 870 || funcid == 871 {
                let args = list_nodes((*f).args);
                if let Some(arg) = args.first() {
                    if is_a(*arg, pg_sys::NodeTag::T_Var)
                        && (*(*arg as *mut pg_sys::Var)).varattno > 0
                    {
                        let a = (*(*arg as *mut pg_sys::Var)).varattno;
                        return attr_width(relid, a, typid, typmod);
                    }
                }
            }
        }
        if pg_sys::get_typlen(typid) > 0 {
            pg_sys::get_typavgwidth(typid, typmod)
        } else {
            50
        }
    }
}

unsafe fn options(
    list: *mut pg_sys::List,
    relam: pg_sys::Oid,
) -> Result<(Option<i32>, Option<i32>)> {
    let mut fillfactor = None;
    let mut ppr = None;
    unsafe {
        for node in list_nodes(list) {
            let def = node as *mut pg_sys::DefElem;
            let name = cstr((*def).defname);
            match name.as_str() {
                "fillfactor" if relam != pg_sys::BRIN_AM_OID && relam != pg_sys::GIN_AM_OID => {
                    let v = pg_sys::defGetInt32(def);
                    if !(10..=100).contains(&v) {
                        return Err(CapstoneError::InvalidParameter(format!(
                            "fillfactor must be between 10 and 100 (got {v})"
                        ))
                        .into());
                    }
                    fillfactor = Some(v);
                }
                "pages_per_range" if relam == pg_sys::BRIN_AM_OID => {
                    let v = pg_sys::defGetInt32(def);
                    if !(1..=131072).contains(&v) {
                        return Err(CapstoneError::InvalidParameter(format!(
                            "pages_per_range must be between 1 and 131072 (got {v})"
                        ))
                        .into());
                    }
                    ppr = Some(v);
                }
                // accepted; they change how the index is built, not its costing here
                "deduplicate_items"
                | "buffering"
                | "fastupdate"
                | "gin_pending_list_limit"
                | "autosummarize" => {}
                _ => {
                    return Err(CapstoneError::InvalidParameter(format!(
                        "unrecognized parameter \"{name}\" for a hypothetical index"
                    ))
                    .with_hint("supported: fillfactor, pages_per_range (brin)"))
                }
            }
        }
    }
    Ok((fillfactor, ppr))
}

fn opclass_name(opclass: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT opcname::text FROM pg_catalog.pg_opclass WHERE oid = $1",
        &[opclass.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// An OID no relation uses, from the range below FirstNormalObjectId that the
/// server never hands out after initdb (hypopg's scheme).
fn free_oid() -> Result<pg_sys::Oid> {
    let mut candidate = pg_sys::FirstNormalObjectId - 1;
    while candidate >= 10_000 {
        let oid = pg_sys::Oid::from(candidate);
        // SAFETY: a syscache probe by OID
        let taken = unsafe {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::RELOID as i32,
                pg_sys::Datum::from(oid),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
            )
        };
        if !taken && !store::is_used(oid) {
            return Ok(oid);
        }
        candidate -= 1;
    }
    Err(CapstoneError::InsufficientResources(
        "no free OID is left for another hypothetical index".into(),
    )
    .with_hint("drop some with capstone.hypo_drop(id) or capstone.hypo_reset()"))
}

fn truncate_name(name: &str) -> String {
    let mut end = name.len().min(NAMEDATALEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}
