//! One workload statement read by PostgreSQL itself: parsed with the raw parser,
//! analyzed with unknown parameter types (as EXPLAIN (GENERIC_PLAN) does), its
//! column uses read from the analyzed Query (WHERE and JOIN conditions, ORDER BY,
//! GROUP BY, the columns it reads), and its generic plan's cost taken straight from the
//! planner. Planning with no parameter values gives the generic plan on every major
//! (15 has no GENERIC_PLAN option; a PREPAREd statement would not see hypothetical
//! indexes). Nothing here executes the statement.

use super::candidates::{ColumnUse, ConstPred, TableShape, Use};
use pgrx::pg_sys;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};

/// An analyzed statement, ready to be planned again and again.
pub struct Analyzed {
    pub query: *mut pg_sys::Query,
    pub sql: CString,
    /// One shape per table it uses, by table OID.
    pub shapes: Vec<TableShape>,
    /// Every user table it reads or writes, at any level.
    pub relids: Vec<u32>,
    /// How many $n parameters it has (0: it can be executed as it is).
    pub nparams: i32,
    /// An UPDATE (or INSERT ... ON CONFLICT DO UPDATE): its table and the columns it sets.
    pub updated: Option<(u32, Vec<i16>)>,
}

unsafe fn list_nodes(list: *mut pg_sys::List) -> Vec<*mut pg_sys::Node> {
    unsafe { crate::infra::parse::list_ptrs(list) }
}

unsafe fn tag(node: *mut pg_sys::Node) -> Option<pg_sys::NodeTag> {
    if node.is_null() {
        None
    } else {
        Some(unsafe { (*node).type_ })
    }
}

unsafe fn strip(mut node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    unsafe {
        while tag(node) == Some(pg_sys::NodeTag::T_RelabelType) {
            node = (*(node as *mut pg_sys::RelabelType)).arg as *mut pg_sys::Node;
        }
    }
    node
}

unsafe fn text(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

fn quote(name: &str) -> String {
    pgrx::spi::quote_identifier(name)
}

/// Schemas whose tables are never advised on.
const SYSTEM_SCHEMAS: [&str; 4] = ["pg_catalog", "information_schema", "pg_toast", "capstone"];

/// Parse and analyze one statement; None when it is not exactly one SELECT, INSERT,
/// UPDATE, DELETE or MERGE (utility statements are skipped). Analysis errors (a table
/// that is gone, an undeterminable parameter type) are raised: the caller catches them.
pub fn analyze(sql: &str) -> Option<Analyzed> {
    let c = CString::new(sql).ok()?;
    unsafe {
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        let raws = list_nodes(list);
        if raws.len() != 1 {
            return None;
        }
        let raw = raws[0] as *mut pg_sys::RawStmt;
        let kind = tag((*raw).stmt)?;
        use pg_sys::NodeTag::*;
        if !matches!(
            kind,
            T_SelectStmt | T_InsertStmt | T_UpdateStmt | T_DeleteStmt | T_MergeStmt
        ) {
            return None;
        }
        let mut types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut ntypes: std::ffi::c_int = 0;
        let queries = pg_sys::pg_analyze_and_rewrite_varparams(
            raw,
            c.as_ptr(),
            &mut types,
            &mut ntypes,
            std::ptr::null_mut(),
        );
        let query = list_nodes(queries)
            .into_iter()
            .map(|n| n as *mut pg_sys::Query)
            .find(|q| (**q).canSetTag && (**q).commandType != pg_sys::CmdType::CMD_UTILITY)?;
        let mut shapes = BTreeMap::new();
        let mut relids = Vec::new();
        walk_query(query, &mut shapes, &mut relids);
        Some(Analyzed {
            query,
            sql: c,
            shapes: shapes.into_values().collect(),
            relids,
            nparams: ntypes,
            updated: updated(query),
        })
    }
}

/// The table an UPDATE (or an INSERT's ON CONFLICT DO UPDATE) changes, and the columns
/// it sets.
unsafe fn updated(q: *mut pg_sys::Query) -> Option<(u32, Vec<i16>)> {
    unsafe {
        let set = match (*q).commandType {
            pg_sys::CmdType::CMD_UPDATE => (*q).targetList,
            pg_sys::CmdType::CMD_INSERT
                if !(*q).onConflict.is_null()
                    && (*(*q).onConflict).action == pg_sys::OnConflictAction::ONCONFLICT_UPDATE =>
            {
                (*(*q).onConflict).onConflictSet
            }
            _ => return None,
        };
        let rel = rel_of(q, (*q).resultRelation)?;
        let mut columns: Vec<i16> = list_nodes(set)
            .into_iter()
            .map(|n| n as *mut pg_sys::TargetEntry)
            .filter(|te| !(**te).resjunk && (**te).resno > 0)
            .map(|te| (*te).resno)
            .collect();
        columns.sort_unstable();
        columns.dedup();
        Some((rel.relid.to_u32(), columns))
    }
}

/// The generic plan's total cost, planned in a scratch copy of the query.
/// `hypothetical` plans with this session's hypothetical (and without its hidden) indexes.
pub fn generic_cost(a: &Analyzed, hypothetical: bool) -> f64 {
    let plan = || unsafe {
        let copy = pg_sys::copyObjectImpl(a.query as *const std::ffi::c_void) as *mut pg_sys::Query;
        let stmt = pg_sys::pg_plan_query(
            copy,
            a.sql.as_ptr(),
            pg_sys::CURSOR_OPT_PARALLEL_OK as std::ffi::c_int,
            std::ptr::null_mut(),
        );
        (*(*stmt).planTree).total_cost
    };
    let mut cx = pgrx::PgMemoryContexts::new("capstone index advice plan");
    // SAFETY: the plan is read and then thrown away with the context
    unsafe {
        cx.switch_to(|_| {
            if hypothetical {
                super::hooks::with_hypothetical(plan)
            } else {
                plan()
            }
        })
    }
}

struct Rel {
    relid: pg_sys::Oid,
}

unsafe fn rel_of(q: *mut pg_sys::Query, varno: i32) -> Option<Rel> {
    unsafe {
        let rtable = list_nodes((*q).rtable);
        let rte = *rtable.get(usize::try_from(varno - 1).ok()?)? as *mut pg_sys::RangeTblEntry;
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return None;
        }
        let kind = (*rte).relkind as u8;
        if kind != b'r' && kind != b'm' {
            return None;
        }
        let relid = (*rte).relid;
        if relid.to_u32() < pg_sys::FirstNormalObjectId {
            return None;
        }
        let ns = text(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
        if SYSTEM_SCHEMAS.contains(&ns.as_str()) {
            return None;
        }
        Some(Rel { relid })
    }
}

/// A plain column of a user table at this query level: (table, attnum).
unsafe fn column(q: *mut pg_sys::Query, node: *mut pg_sys::Node) -> Option<(pg_sys::Oid, i16)> {
    unsafe {
        let node = strip(node);
        if tag(node) != Some(pg_sys::NodeTag::T_Var) {
            return None;
        }
        let v = node as *mut pg_sys::Var;
        if (*v).varlevelsup != 0 || (*v).varattno <= 0 {
            return None;
        }
        let rel = rel_of(q, (*v).varno)?;
        Some((rel.relid, (*v).varattno))
    }
}

unsafe fn attname(relid: pg_sys::Oid, attnum: i16) -> String {
    quote(&unsafe { text(pg_sys::get_attname(relid, attnum, true)) })
}

unsafe fn shape(out: &mut BTreeMap<u32, TableShape>, relid: pg_sys::Oid) -> &mut TableShape {
    out.entry(relid.to_u32()).or_insert_with(|| unsafe {
        let ns = text(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)));
        let name = text(pg_sys::get_rel_name(relid));
        TableShape {
            relid: relid.to_u32(),
            table: format!("{}.{}", quote(&ns), quote(&name)),
            ..Default::default()
        }
    })
}

unsafe fn add_use(out: &mut BTreeMap<u32, TableShape>, relid: pg_sys::Oid, attnum: i16, kind: Use) {
    unsafe {
        let name = attname(relid, attnum);
        let s = shape(out, relid);
        let u = ColumnUse { attnum, name, kind };
        if !s.uses.contains(&u) {
            s.uses.push(u);
        }
    }
}

unsafe fn add_pred(out: &mut BTreeMap<u32, TableShape>, relid: pg_sys::Oid, pred: ConstPred) {
    unsafe {
        let s = shape(out, relid);
        if !s.const_preds.contains(&pred) {
            s.const_preds.push(pred);
        }
    }
}

unsafe fn deparse_const(node: *mut pg_sys::Node) -> String {
    unsafe {
        text(pg_sys::deparse_expression(
            node,
            std::ptr::null_mut(),
            false,
            false,
        ))
    }
}

/// ROWCOMPARE_EQ (15-17) and COMPARE_EQ (18) are both 3.
const ROW_COMPARE_EQ: u32 = 3;

#[cfg(not(feature = "pg18"))]
#[allow(clippy::unnecessary_cast)] // RowCompareType::Type is u32 today
unsafe fn row_compare_kind(rc: *mut pg_sys::RowCompareExpr) -> u32 {
    unsafe { (*rc).rctype as u32 }
}

#[cfg(feature = "pg18")]
#[allow(clippy::unnecessary_cast)] // CompareType::Type is u32 today; the cast keeps that an assumption
unsafe fn row_compare_kind(rc: *mut pg_sys::RowCompareExpr) -> u32 {
    unsafe { (*rc).cmptype as u32 }
}

/// One condition of WHERE or JOIN ... ON (AND-ed conditions are split).
unsafe fn condition(
    q: *mut pg_sys::Query,
    node: *mut pg_sys::Node,
    out: &mut BTreeMap<u32, TableShape>,
) {
    use pg_sys::NodeTag::*;
    unsafe {
        match tag(node) {
            Some(T_BoolExpr) => {
                let b = node as *mut pg_sys::BoolExpr;
                let args = list_nodes((*b).args);
                match (*b).boolop {
                    pg_sys::BoolExprType::AND_EXPR => {
                        for a in args {
                            condition(q, a, out);
                        }
                    }
                    pg_sys::BoolExprType::NOT_EXPR => {
                        if let Some((relid, att)) = args.first().and_then(|a| column(q, *a)) {
                            if pg_sys::get_atttype(relid, att) == pg_sys::BOOLOID {
                                let col = attname(relid, att);
                                add_pred(
                                    out,
                                    relid,
                                    ConstPred {
                                        text: format!("NOT {col}"),
                                        fixes: Some(att),
                                    },
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some(T_OpExpr) => {
                let op = node as *mut pg_sys::OpExpr;
                let args = list_nodes((*op).args);
                if args.len() != 2 {
                    return;
                }
                let name = text(pg_sys::get_opname((*op).opno));
                let kind = match name.as_str() {
                    "=" => Use::Eq,
                    "<" | "<=" | ">" | ">=" => Use::Range,
                    _ => return,
                };
                let (l, r) = (strip(args[0]), strip(args[1]));
                match (column(q, l), column(q, r)) {
                    // a join key: an index on either side serves a nested loop
                    (Some((lrel, la)), Some((rrel, ra)))
                        if kind == Use::Eq
                            && (*(l as *mut pg_sys::Var)).varno
                                != (*(r as *mut pg_sys::Var)).varno =>
                    {
                        add_use(out, lrel, la, Use::Eq);
                        add_use(out, rrel, ra, Use::Eq);
                    }
                    (Some(_), Some(_)) => {}
                    (Some((rel, att)), None) if !pg_sys::contain_vars_of_level(r, 0) => {
                        add_use(out, rel, att, kind);
                        if tag(r) == Some(T_Const) {
                            let col = attname(rel, att);
                            let t = format!("{col} {name} {}", deparse_const(r));
                            add_pred(
                                out,
                                rel,
                                ConstPred {
                                    text: t,
                                    fixes: (kind == Use::Eq).then_some(att),
                                },
                            );
                        }
                    }
                    (None, Some((rel, att))) if !pg_sys::contain_vars_of_level(l, 0) => {
                        add_use(out, rel, att, kind);
                        if tag(l) == Some(T_Const) {
                            let col = attname(rel, att);
                            let t = format!("{} {name} {col}", deparse_const(l));
                            add_pred(
                                out,
                                rel,
                                ConstPred {
                                    text: t,
                                    fixes: (kind == Use::Eq).then_some(att),
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
            Some(T_ScalarArrayOpExpr) => {
                let op = node as *mut pg_sys::ScalarArrayOpExpr;
                let args = list_nodes((*op).args);
                if args.len() == 2
                    && (*op).useOr
                    && text(pg_sys::get_opname((*op).opno)) == "="
                    && !pg_sys::contain_vars_of_level(args[1], 0)
                {
                    if let Some((rel, att)) = column(q, args[0]) {
                        add_use(out, rel, att, Use::Eq);
                    }
                }
            }
            Some(T_NullTest) => {
                let t = node as *mut pg_sys::NullTest;
                if let Some((rel, att)) = column(q, (*t).arg as *mut pg_sys::Node) {
                    let col = attname(rel, att);
                    let (txt, fixes) = if (*t).nulltesttype == pg_sys::NullTestType::IS_NULL {
                        (format!("{col} IS NULL"), Some(att))
                    } else {
                        (format!("{col} IS NOT NULL"), None)
                    };
                    add_pred(out, rel, ConstPred { text: txt, fixes });
                }
            }
            Some(T_RowCompareExpr) => {
                let rc = node as *mut pg_sys::RowCompareExpr;
                let largs = list_nodes((*rc).largs);
                let rargs = list_nodes((*rc).rargs);
                if let (Some(l), Some(r)) = (largs.first(), rargs.first()) {
                    if row_compare_kind(rc) != ROW_COMPARE_EQ
                        && !pg_sys::contain_vars_of_level(*r, 0)
                    {
                        if let Some((rel, att)) = column(q, *l) {
                            add_use(out, rel, att, Use::Range);
                        }
                    }
                }
            }
            Some(T_Var) => {
                if let Some((relid, att)) = column(q, node) {
                    if pg_sys::get_atttype(relid, att) == pg_sys::BOOLOID {
                        let col = attname(relid, att);
                        add_pred(
                            out,
                            relid,
                            ConstPred {
                                text: col,
                                fixes: Some(att),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

unsafe fn from_item(
    q: *mut pg_sys::Query,
    node: *mut pg_sys::Node,
    out: &mut BTreeMap<u32, TableShape>,
) {
    use pg_sys::NodeTag::*;
    unsafe {
        match tag(node) {
            Some(T_FromExpr) => {
                let f = node as *mut pg_sys::FromExpr;
                for n in list_nodes((*f).fromlist) {
                    from_item(q, n, out);
                }
                condition(q, (*f).quals, out);
            }
            Some(T_JoinExpr) => {
                let j = node as *mut pg_sys::JoinExpr;
                from_item(q, (*j).larg, out);
                from_item(q, (*j).rarg, out);
                condition(q, (*j).quals, out);
            }
            _ => {}
        }
    }
}

/// The target-list expression a sort/group clause refers to.
unsafe fn clause_expr(
    q: *mut pg_sys::Query,
    sgc: *mut pg_sys::SortGroupClause,
) -> *mut pg_sys::Node {
    unsafe {
        for n in list_nodes((*q).targetList) {
            let te = n as *mut pg_sys::TargetEntry;
            if (*te).ressortgroupref == (*sgc).tleSortGroupRef {
                return (*te).expr as *mut pg_sys::Node;
            }
        }
    }
    std::ptr::null_mut()
}

unsafe fn walk_query(
    q: *mut pg_sys::Query,
    out: &mut BTreeMap<u32, TableShape>,
    relids: &mut Vec<u32>,
) {
    unsafe {
        from_item(q, (*q).jointree as *mut pg_sys::Node, out);
        // ORDER BY: only when every key is a column of one table (else no index can order it)
        let sorts: Vec<_> = list_nodes((*q).sortClause)
            .into_iter()
            .map(|n| {
                let sgc = n as *mut pg_sys::SortGroupClause;
                let desc = text(pg_sys::get_opname((*sgc).sortop)) == ">";
                (column(q, clause_expr(q, sgc)), desc)
            })
            .collect();
        if !sorts.is_empty() && sorts.iter().all(|(c, _)| c.is_some()) {
            let first = sorts[0].0.map(|(r, _)| r);
            if sorts.iter().all(|(c, _)| c.map(|(r, _)| r) == first) {
                for (c, desc) in sorts {
                    if let Some((rel, att)) = c {
                        add_use(out, rel, att, Use::Sort { desc });
                    }
                }
            }
        }
        for n in list_nodes((*q).groupClause) {
            if let Some((rel, att)) = column(q, clause_expr(q, n as *mut pg_sys::SortGroupClause)) {
                add_use(out, rel, att, Use::Group);
            }
        }
        // the columns it reads, for covering candidates (only tables it has a use on)
        let vars = list_nodes(pg_sys::pull_vars_of_level(q as *mut pg_sys::Node, 0));
        for v in vars {
            if let Some((rel, att)) = column(q, v) {
                if let Some(s) = out.get_mut(&rel.to_u32()) {
                    if !s.referenced.iter().any(|(a, _)| *a == att) {
                        let name = attname(rel, att);
                        s.referenced.push((att, name));
                    }
                }
            }
        }
        for (i, n) in list_nodes((*q).rtable).into_iter().enumerate() {
            let rte = n as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY && !(*rte).subquery.is_null() {
                walk_query((*rte).subquery, out, relids);
            }
            if let Some(rel) = rel_of(q, i as i32 + 1) {
                if !relids.contains(&rel.relid.to_u32()) {
                    relids.push(rel.relid.to_u32());
                }
            }
        }
        for n in list_nodes((*q).cteList) {
            let cte = n as *mut pg_sys::CommonTableExpr;
            let sub = (*cte).ctequery;
            if tag(sub) == Some(pg_sys::NodeTag::T_Query) {
                walk_query(sub as *mut pg_sys::Query, out, relids);
            }
        }
    }
}
