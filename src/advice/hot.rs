//! What a new index costs the table's writes, HOT updates included. An UPDATE that
//! changes no indexed column can be HOT: the new row version goes on the same page and no
//! index gets an entry. An index on a column such an UPDATE changes makes those updates
//! non-HOT, and a non-HOT update writes an entry into every index of the table, not only
//! the new one. So the overhead is the new index's entries for inserts and for the updates
//! that are already non-HOT, plus, for each HOT update it breaks, an entry in the new
//! index and in every existing one.
//!
//! Which updates it breaks comes from the workload: each UPDATE (and INSERT ... ON
//! CONFLICT DO UPDATE) in pg_stat_statements, the columns it sets (from the analyzed
//! Query) and its rows, against the columns PostgreSQL itself counts as blocking HOT
//! (`RelationGetIndexAttrBitmap`: keys, INCLUDE, expression and predicate columns).

use pgrx::pg_sys;

/// One updating statement of the workload on a table: the columns it sets, its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub columns: Vec<i16>,
    pub rows: i64,
}

/// The table's write counts since the statistics were reset (pg_stat_user_tables).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Writes {
    pub inserts: i64,
    pub updates: i64,
    pub hot_updates: i64,
}

/// How many of the table's HOT updates the new index would make non-HOT: the rows of
/// the statements that can be HOT today (they set no column an index covers) and set a
/// column the new index covers, scaled by the share of such rows that really were HOT.
pub fn broken_hot(
    new_columns: &[i16],
    blocking: &[i16],
    updates: &[Update],
    hot_updates: i64,
) -> i64 {
    let can_be_hot: Vec<&Update> = updates
        .iter()
        .filter(|u| !u.columns.iter().any(|c| blocking.contains(c)))
        .collect();
    let total: i64 = can_be_hot.iter().map(|u| u.rows.max(0)).sum();
    if total == 0 || hot_updates <= 0 {
        return 0;
    }
    let breaking: i64 = can_be_hot
        .iter()
        .filter(|u| u.columns.iter().any(|c| new_columns.contains(c)))
        .map(|u| u.rows.max(0))
        .sum();
    let share = (hot_updates as f64 / total as f64).min(1.0);
    (breaking as f64 * share).round() as i64
}

/// Bytes of index entries the new index adds to the writes counted: its own entry for each
/// insert, each non-HOT update and each HOT update it breaks, and an entry in every existing
/// index (`existing_entry_bytes`, their entry sizes summed) for each update it breaks.
pub fn overhead_bytes(entry_bytes: i64, w: Writes, broken: i64, existing_entry_bytes: i64) -> i64 {
    let non_hot = (w.updates - w.hot_updates).max(0);
    entry_bytes
        .saturating_mul(w.inserts.max(0) + non_hot + broken)
        .saturating_add(broken.saturating_mul(existing_entry_bytes))
}

unsafe fn members(set: *mut pg_sys::Bitmapset, offset: i32) -> Vec<i16> {
    let mut out = Vec::new();
    let mut m = -1;
    loop {
        m = unsafe { pg_sys::bms_next_member(set, m) };
        if m < 0 {
            break;
        }
        let attnum = m + offset;
        if attnum > 0 {
            out.push(attnum as i16);
        }
    }
    out
}

/// The columns of `relid` an existing index makes HOT-blocking, as PostgreSQL decides it.
/// The table is locked by the caller (the candidate's definition locked it).
pub fn blocking_columns(relid: pg_sys::Oid) -> Vec<i16> {
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return Vec::new();
        }
        #[cfg(feature = "pg15")]
        let kind = pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_ALL;
        #[cfg(not(feature = "pg15"))]
        let kind = pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_HOT_BLOCKING;
        let set = pg_sys::RelationGetIndexAttrBitmap(rel, kind);
        pg_sys::RelationClose(rel);
        members(set, pg_sys::FirstLowInvalidHeapAttributeNumber)
    }
}

/// The table columns a hypothetical index covers: its plain columns and those its
/// expressions and predicate read.
pub fn index_columns(index: &super::store::HypoIndex) -> Vec<i16> {
    let mut out: Vec<i16> = index
        .columns
        .iter()
        .filter(|c| c.attnum > 0)
        .map(|c| c.attnum as i16)
        .collect();
    for tree in [&index.exprs, &index.pred] {
        if tree.is_empty() {
            continue;
        }
        let Ok(text) = std::ffi::CString::new(tree.as_str()) else {
            continue;
        };
        unsafe {
            let node = pg_sys::stringToNode(text.as_ptr()) as *mut pg_sys::Node;
            let mut set: *mut pg_sys::Bitmapset = std::ptr::null_mut();
            pg_sys::pull_varattnos(node, 1, &mut set);
            out.extend(members(set, pg_sys::FirstLowInvalidHeapAttributeNumber));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    fn u(columns: &[i16], rows: i64) -> Update {
        Update {
            columns: columns.to_vec(),
            rows,
        }
    }

    #[test]
    fn an_index_on_an_updated_column_breaks_its_hot_updates() {
        // status (3) is set by a HOT-able statement; id (1) is the only indexed column
        let updates = [u(&[3], 900), u(&[1], 50)];
        assert_eq!(broken_hot(&[3], &[1], &updates, 900), 900);
        // an index on another column breaks nothing
        assert_eq!(broken_hot(&[4], &[1], &updates, 900), 0);
        // the statement setting an indexed column is never HOT: not counted
        assert_eq!(broken_hot(&[1, 3], &[1], &updates, 900), 900);
    }

    #[test]
    fn scaled_by_the_share_that_really_was_hot() {
        // 1,000 rows could be HOT, 600 were (pages full): the breaking half counts 300
        let updates = [u(&[3], 500), u(&[5], 500)];
        assert_eq!(broken_hot(&[3], &[1], &updates, 600), 300);
        // more HOT updates than the statements seen: capped at the statements' rows
        assert_eq!(broken_hot(&[3], &[1], &updates, 5000), 500);
        assert_eq!(broken_hot(&[3], &[1], &updates, 0), 0);
        assert_eq!(broken_hot(&[3], &[1], &[], 100), 0);
    }

    #[test]
    fn overhead_counts_every_index_for_a_broken_update() {
        let w = Writes {
            inserts: 100,
            updates: 1000,
            hot_updates: 900,
        };
        // 16-byte entries: 100 inserts + 100 non-HOT updates, nothing broken
        assert_eq!(overhead_bytes(16, w, 0, 40), 16 * 200);
        // 900 broken: the new index's entries and 40 bytes of existing entries each
        assert_eq!(overhead_bytes(16, w, 900, 40), 16 * 1100 + 900 * 40);
        assert_eq!(overhead_bytes(16, Writes::default(), 0, 40), 0);
    }
}
