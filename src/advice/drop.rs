//! Which existing indexes could go: unused since the statistics were reset, exact
//! duplicates, and btree indexes whose keys are a prefix of another's on the same table
//! (same predicate, same operator classes). An index that backs a constraint or the
//! replica identity is never named; a unique index only when an identical one stays.
//! Pure: the catalog rows arrive read.

/// One existing index as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    pub oid: u32,
    pub name: String,
    pub table: u32,
    pub am: u32,
    /// Key column numbers (0 = expression).
    pub keys: Vec<i16>,
    /// Key and INCLUDE column numbers.
    pub columns: Vec<i16>,
    pub opclasses: Vec<u32>,
    pub collations: Vec<u32>,
    pub exprs: Option<String>,
    pub pred: Option<String>,
    pub unique: bool,
    /// Why it must stay whatever the findings: "primary key", "constraint", "replica identity".
    pub protected: Option<String>,
    pub idx_scan: Option<i64>,
    pub valid: bool,
}

/// Why an index could be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Never scanned since the statistics were reset.
    Unused,
    /// The same definition as another index, which stays.
    Duplicate { of: String },
    /// Its keys are a prefix of another index's keys, which serves the same scans.
    Prefix { of: String },
}

impl Reason {
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Unused => "unused",
            Reason::Duplicate { .. } => "duplicate",
            Reason::Prefix { .. } => "prefix",
        }
    }

    /// The index this finding relies on staying.
    pub fn kept(&self) -> Option<&str> {
        match self {
            Reason::Unused => None,
            Reason::Duplicate { of } | Reason::Prefix { of } => Some(of),
        }
    }

    pub fn detail(&self, idx_scan: Option<i64>) -> String {
        match self {
            Reason::Unused => format!(
                "{} index scans since the statistics were reset",
                idx_scan.unwrap_or(0)
            ),
            Reason::Duplicate { of } => format!("same definition as {of}, which stays"),
            Reason::Prefix { of } => format!("its keys are a leading prefix of {of}'s keys"),
        }
    }
}

const BTREE: u32 = 403;

fn same_definition(a: &Index, b: &Index) -> bool {
    a.table == b.table
        && a.am == b.am
        && a.columns == b.columns
        && a.keys == b.keys
        && a.opclasses == b.opclasses
        && a.collations == b.collations
        && a.exprs == b.exprs
        && a.pred == b.pred
}

/// Is `a` a prefix-redundant index served by `b`?
fn prefix_of(a: &Index, b: &Index) -> bool {
    a.table == b.table
        && a.am == BTREE
        && b.am == BTREE
        && a.exprs.is_none()
        && b.exprs.is_none()
        && a.pred == b.pred
        && !a.unique
        && a.keys.len() < b.keys.len()
        && b.keys[..a.keys.len()] == a.keys[..]
        && a.opclasses.len() >= a.keys.len()
        && b.opclasses.len() >= a.keys.len()
        && a.opclasses[..a.keys.len()] == b.opclasses[..a.keys.len()]
        && a.collations.get(..a.keys.len()) == b.collations.get(..a.keys.len())
        // what a covers (keys and INCLUDE) b must carry too, for the same index-only scans
        && a.columns.iter().all(|c| b.columns.contains(c))
}

/// Every finding: (index position, reason), at most one per index, in three passes
/// (duplicates, then prefixes, then unused) so that an index named as the one that
/// stays is never itself in the list: dropping every index listed is safe together.
pub fn findings(indexes: &[Index]) -> Vec<(usize, Reason)> {
    let n = indexes.len();
    let mut dropped = vec![false; n];
    let mut keeper = vec![false; n];
    let mut out = Vec::new();
    let candidate = |a: &Index| a.protected.is_none() && a.valid;
    for (i, a) in indexes.iter().enumerate() {
        if !candidate(a) || keeper[i] {
            continue;
        }
        // a duplicate goes when the other one stays: protected, or older (lower OID)
        let dup = indexes.iter().enumerate().find(|(j, b)| {
            *j != i
                && b.valid
                && !dropped[*j]
                && same_definition(a, b)
                && (b.protected.is_some() || b.oid < a.oid)
        });
        if let Some((j, b)) = dup {
            dropped[i] = true;
            keeper[j] = true;
            out.push((i, Reason::Duplicate { of: b.name.clone() }));
        }
    }
    for (i, a) in indexes.iter().enumerate() {
        if !candidate(a) || dropped[i] || keeper[i] {
            continue;
        }
        let longer = indexes
            .iter()
            .enumerate()
            .find(|(j, b)| b.valid && !dropped[*j] && prefix_of(a, b));
        if let Some((j, b)) = longer {
            dropped[i] = true;
            keeper[j] = true;
            out.push((i, Reason::Prefix { of: b.name.clone() }));
        }
    }
    for (i, a) in indexes.iter().enumerate() {
        if candidate(a) && !dropped[i] && !keeper[i] && !a.unique && a.idx_scan == Some(0) {
            out.push((i, Reason::Unused));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    fn ix(oid: u32, name: &str, keys: &[i16]) -> Index {
        Index {
            oid,
            name: name.into(),
            table: 1,
            am: BTREE,
            keys: keys.to_vec(),
            columns: keys.to_vec(),
            opclasses: keys.iter().map(|_| 1978).collect(),
            collations: keys.iter().map(|_| 0).collect(),
            idx_scan: Some(5),
            valid: true,
            ..Default::default()
        }
    }

    fn kinds(f: &[(usize, Reason)]) -> Vec<(usize, &'static str)> {
        f.iter().map(|(i, r)| (*i, r.kind())).collect()
    }

    #[test]
    fn the_newer_duplicate_goes() {
        let f = findings(&[ix(10, "a", &[1]), ix(11, "b", &[1])]);
        assert_eq!(f, vec![(1, Reason::Duplicate { of: "a".into() })]);
    }

    #[test]
    fn a_duplicate_of_a_constraint_index_goes_and_the_constraint_stays() {
        let mut pk = ix(11, "pk", &[1]);
        pk.protected = Some("primary key".into());
        pk.unique = true;
        let f = findings(&[ix(10, "a", &[1]), pk]);
        assert_eq!(f, vec![(0, Reason::Duplicate { of: "pk".into() })]);
    }

    #[test]
    fn a_prefix_goes_a_longer_key_stays() {
        let f = findings(&[ix(10, "a", &[1]), ix(11, "ab", &[1, 2])]);
        assert_eq!(f, vec![(0, Reason::Prefix { of: "ab".into() })]);
    }

    #[test]
    fn not_a_prefix_when_order_predicate_or_opclass_differ() {
        let mut p = ix(10, "a_partial", &[1]);
        p.pred = Some("x > 0".into());
        let mut oc = ix(12, "a_pattern", &[1]);
        oc.opclasses = vec![10049];
        let f = findings(&[ix(9, "b", &[2]), ix(11, "ba", &[2, 1]), p, oc]);
        assert_eq!(kinds(&f), vec![(0, "prefix")]);
    }

    #[test]
    fn unused_but_protected_or_unique_stays() {
        let mut a = ix(10, "a", &[1]);
        a.idx_scan = Some(0);
        let mut u = ix(11, "u", &[2]);
        u.idx_scan = Some(0);
        u.unique = true;
        let mut c = ix(12, "c", &[3]);
        c.idx_scan = Some(0);
        c.protected = Some("constraint".into());
        let f = findings(&[a, u, c]);
        assert_eq!(kinds(&f), vec![(0, "unused")]);
    }

    #[test]
    fn an_index_that_stays_for_another_finding_is_never_listed() {
        // a duplicates b; b is a prefix of c; c is unused
        let a = ix(11, "a", &[1]);
        let b = ix(10, "b", &[1]);
        let mut c = ix(12, "c", &[1, 2]);
        c.idx_scan = Some(0);
        let f = findings(&[a, b, c]);
        assert_eq!(kinds(&f), vec![(0, "duplicate"), (2, "unused")]);
    }

    #[test]
    fn a_unique_prefix_stays() {
        let mut a = ix(10, "a", &[1]);
        a.unique = true;
        assert!(findings(&[a, ix(11, "ab", &[1, 2])]).is_empty());
    }

    #[test]
    fn an_include_column_the_longer_index_lacks_keeps_the_prefix() {
        let mut a = ix(10, "a_inc", &[1]);
        a.columns = vec![1, 5];
        assert!(findings(&[a, ix(11, "ab", &[1, 2])]).is_empty());
    }
}
