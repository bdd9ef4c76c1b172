//! Build the planner's IndexOptInfo for a hypothetical index and add it to a
//! relation's index list, and take hidden indexes out of it. Called only from the
//! planner hook while a plain EXPLAIN plans; never touches the catalog's indexes.

use super::fill;
use super::size::{self, Model, SizeInput};
use super::store::{self, HypoIndex};
use pgrx::pg_sys;
use pgrx::PgBox;
use std::ffi::CString;

unsafe fn node_from(text: &str) -> *mut pg_sys::List {
    if text.is_empty() {
        return std::ptr::null_mut();
    }
    let Ok(c) = CString::new(text) else {
        return std::ptr::null_mut();
    };
    // SAFETY: text came from nodeToString in this backend
    unsafe { pg_sys::stringToNode(c.as_ptr()).cast() }
}

unsafe fn palloc_array<T: Copy>(values: &[T]) -> *mut T {
    let n = values.len().max(1);
    unsafe {
        let p = pg_sys::palloc0(n * std::mem::size_of::<T>()) as *mut T;
        for (i, v) in values.iter().enumerate() {
            *p.add(i) = *v;
        }
        p
    }
}

fn model(index: &HypoIndex) -> Model {
    match index.relam {
        pg_sys::BTREE_AM_OID => Model::Btree,
        pg_sys::HASH_AM_OID => Model::Hash,
        pg_sys::BRIN_AM_OID => Model::Brin {
            minmax: index.brin_minmax,
        },
        _ => Model::Generic,
    }
}

/// Rows the index holds: the table's, scaled by a partial index's predicate selectivity.
unsafe fn index_tuples(index: &HypoIndex, rel: *mut pg_sys::RelOptInfo) -> f64 {
    unsafe {
        let rel_tuples = (*rel).tuples;
        let pred = node_from(&index.pred);
        if pred.is_null() {
            return rel_tuples;
        }
        // a one-table planner context whose range-table entry 1 is the indexed table
        let root =
            PgBox::<pg_sys::PlannerInfo>::alloc_node(pg_sys::NodeTag::T_PlannerInfo).into_pg();
        let glob =
            PgBox::<pg_sys::PlannerGlobal>::alloc_node(pg_sys::NodeTag::T_PlannerGlobal).into_pg();
        (*root).glob = glob;
        let rte =
            PgBox::<pg_sys::RangeTblEntry>::alloc_node(pg_sys::NodeTag::T_RangeTblEntry).into_pg();
        (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
        (*rte).relid = index.relid;
        (*rte).relkind = b'r' as std::ffi::c_char;
        (*rte).inh = false;
        let query = PgBox::<pg_sys::Query>::alloc_node(pg_sys::NodeTag::T_Query).into_pg();
        (*query).rtable = pg_sys::lappend(std::ptr::null_mut(), rte.cast());
        (*root).parse = query;
        pg_sys::setup_simple_rel_arrays(root);
        *(*root).simple_rel_array.add(1) = rel;
        let sel = pg_sys::clauselist_selectivity(
            root,
            pred,
            0,
            pg_sys::JoinType::JOIN_INNER,
            std::ptr::null_mut(),
        );
        sel * rel_tuples
    }
}

/// Estimated pages and rows of `index` over a relation with these statistics.
///
/// # Safety
/// `rel` must be a RelOptInfo with `tuples` and `pages` set.
pub unsafe fn estimate(index: &HypoIndex, rel: *mut pg_sys::RelOptInfo) -> (u32, f64) {
    unsafe {
        let tuples = index_tuples(index, rel);
        let input = SizeInput {
            model: model(index),
            tuples,
            table_pages: (*rel).pages,
            entry_width: index.columns.iter().map(|c| c.width).sum(),
            columns: index.columns.len(),
            fillfactor: index.fillfactor,
            pages_per_range: index.pages_per_range,
        };
        (size::pages(&input), tuples)
    }
}

/// The table's current row and page estimate, as the planner would see it.
///
/// # Safety
/// `index.relid` must name a table this transaction may lock.
pub unsafe fn estimate_standalone(index: &HypoIndex) -> (u32, f64) {
    unsafe {
        let relation = pg_sys::relation_open(index.relid, pg_sys::AccessShareLock as i32);
        let rel = PgBox::<pg_sys::RelOptInfo>::alloc_node(pg_sys::NodeTag::T_RelOptInfo).into_pg();
        let natts = (*(*relation).rd_att).natts as usize;
        // attr_widths is indexed by attribute number from FirstLowInvalidHeapAttributeNumber + 1
        let low = (-pg_sys::FirstLowInvalidHeapAttributeNumber - 1) as usize;
        let widths = pg_sys::palloc0((natts + low + 1) * std::mem::size_of::<i32>()) as *mut i32;
        pg_sys::estimate_rel_size(
            relation,
            widths.add(low),
            &mut (*rel).pages,
            &mut (*rel).tuples,
            &mut (*rel).allvisfrac,
        );
        pg_sys::relation_close(relation, pg_sys::AccessShareLock as i32);
        estimate(index, rel)
    }
}

/// Add every hypothetical index on `relid` to `rel`, and drop hidden ones from it.
///
/// # Safety
/// Called from get_relation_info_hook with the planner's `rel`.
pub unsafe fn apply(relid: pg_sys::Oid, rel: *mut pg_sys::RelOptInfo) {
    unsafe {
        for oid in store::hidden() {
            let mut keep: *mut pg_sys::List = std::ptr::null_mut();
            let list = (*rel).indexlist;
            if list.is_null() {
                break;
            }
            for i in 0..(*list).length as usize {
                let info = (*(*list).elements.add(i)).ptr_value as *mut pg_sys::IndexOptInfo;
                if (*info).indexoid != oid {
                    keep = pg_sys::lappend(keep, info.cast());
                }
            }
            (*rel).indexlist = keep;
        }
        for index in store::for_table(relid) {
            if store::hidden().contains(&index.oid) {
                continue;
            }
            let info = build(&index, rel);
            if !info.is_null() {
                (*rel).indexlist = pg_sys::lcons(info.cast(), (*rel).indexlist);
            }
        }
    }
}

unsafe fn build(index: &HypoIndex, rel: *mut pg_sys::RelOptInfo) -> *mut pg_sys::IndexOptInfo {
    unsafe {
        let routine = pg_sys::GetIndexAmRoutineByAmId(index.relam, true);
        if routine.is_null() {
            return std::ptr::null_mut();
        }
        let varno = (*rel).relid as i32;
        let ncol = index.columns.len();
        let nkey = index.nkeycolumns;
        let keys = &index.columns[..nkey];
        let info =
            PgBox::<pg_sys::IndexOptInfo>::alloc_node(pg_sys::NodeTag::T_IndexOptInfo).into_pg();
        (*info).indexoid = index.oid;
        (*info).reltablespace = (*rel).reltablespace;
        (*info).rel = rel;
        (*info).relam = index.relam;
        (*info).ncolumns = ncol as i32;
        (*info).nkeycolumns = nkey as i32;
        let attnums: Vec<i32> = index.columns.iter().map(|c| c.attnum).collect();
        (*info).indexkeys = palloc_array(&attnums);
        let colls: Vec<pg_sys::Oid> = keys.iter().map(|c| c.collation).collect();
        (*info).indexcollations = palloc_array(&colls);
        let fams: Vec<pg_sys::Oid> = keys.iter().map(|c| c.opfamily).collect();
        (*info).opfamily = palloc_array(&fams);
        let intypes: Vec<pg_sys::Oid> = keys.iter().map(|c| c.opcintype).collect();
        (*info).opcintype = palloc_array(&intypes);
        if index.relam == pg_sys::BTREE_AM_OID {
            // a btree's opfamilies are its sort opfamilies
            (*info).sortopfamily = (*info).opfamily;
            let rev: Vec<bool> = keys.iter().map(|c| c.descending).collect();
            (*info).reverse_sort = palloc_array(&rev);
            let nf: Vec<bool> = keys.iter().map(|c| c.nulls_first).collect();
            (*info).nulls_first = palloc_array(&nf);
        }
        // only btree returns its columns without a heap visit here (no amcanreturn probe
        // without a real index relation)
        let canreturn: Vec<bool> = index
            .columns
            .iter()
            .map(|_| index.relam == pg_sys::BTREE_AM_OID && (*routine).amcanreturn.is_some())
            .collect();
        (*info).canreturn = palloc_array(&canreturn);
        // one (empty) option set per column, as RelationGetIndexAttOptions gives; GIN's
        // cost estimator reads it
        let no_options: Vec<*mut pg_sys::bytea> =
            index.columns.iter().map(|_| std::ptr::null_mut()).collect();
        (*info).opclassoptions = palloc_array(&no_options);
        let exprs = node_from(&index.exprs);
        if !exprs.is_null() && varno != 1 {
            pg_sys::ChangeVarNodes(exprs.cast(), 1, varno, 0);
        }
        let pred = node_from(&index.pred);
        if !pred.is_null() && varno != 1 {
            pg_sys::ChangeVarNodes(pred.cast(), 1, varno, 0);
        }
        (*info).indexprs = exprs;
        (*info).indpred = pred;
        (*info).indextlist = target_list(index, varno, exprs);
        (*info).indrestrictinfo = std::ptr::null_mut();
        (*info).predOK = false;
        (*info).unique = index.unique;
        fill::set_nulls_not_distinct(info, index.nulls_not_distinct);
        (*info).immediate = true;
        (*info).hypothetical = true;
        (*info).amcanorderbyop = (*routine).amcanorderbyop;
        (*info).amoptionalkey = (*routine).amoptionalkey;
        (*info).amsearcharray = (*routine).amsearcharray;
        (*info).amsearchnulls = (*routine).amsearchnulls;
        (*info).amhasgettuple = (*routine).amgettuple.is_some();
        (*info).amhasgetbitmap = (*routine).amgetbitmap.is_some();
        (*info).amcanparallel = (*routine).amcanparallel;
        (*info).amcanmarkpos = (*routine).ammarkpos.is_some() && (*routine).amrestrpos.is_some();
        fill::set_costestimate(info, routine);
        let (pages, tuples) = estimate(index, rel);
        (*info).pages = pages;
        (*info).tuples = tuples;
        // unknown: the cost estimators then leave the descent term out, as for hypopg
        (*info).tree_height = -1;
        info
    }
}

/// The index's target list: a Var per column, the expression for an expression column.
unsafe fn target_list(
    index: &HypoIndex,
    varno: i32,
    exprs: *mut pg_sys::List,
) -> *mut pg_sys::List {
    unsafe {
        let mut tlist: *mut pg_sys::List = std::ptr::null_mut();
        let mut next_expr = 0usize;
        for (i, c) in index.columns.iter().enumerate() {
            let expr: *mut pg_sys::Expr = if c.attnum != 0 {
                pg_sys::makeVar(varno, c.attnum as i16, c.typid, c.typmod, c.collation, 0).cast()
            } else {
                if exprs.is_null() || next_expr >= (*exprs).length as usize {
                    return tlist;
                }
                let e = (*(*exprs).elements.add(next_expr)).ptr_value as *mut pg_sys::Expr;
                next_expr += 1;
                e
            };
            let te = pg_sys::makeTargetEntry(expr, (i + 1) as i16, std::ptr::null_mut(), false);
            tlist = pg_sys::lappend(tlist, te.cast());
        }
        tlist
    }
}
