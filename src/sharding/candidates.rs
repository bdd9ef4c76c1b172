//! Candidate shard keys (columns foreign keys pair, plus same-named columns), where
//! each table goes under a candidate (distributed, reference, local), and how each
//! foreign-key join then runs. Pure logic over the `SchemaModel`.

use super::model::{ForeignKey, SchemaModel, Table};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A table at most this many rows (or 1% of the largest table, whichever is more)
/// is small enough to replicate to every node as a reference table.
pub const REFERENCE_MIN_ROWS: f64 = 10_000.0;

/// Where a table goes when the schema is distributed by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// Hash-distributed by the key, co-located with the other distributed tables.
    Distributed,
    /// Small: replicated to every node.
    Reference,
    /// Too big to replicate and without the key: stays on one node; joins with it
    /// cross shards.
    Local,
}

impl Placement {
    pub fn as_str(&self) -> &'static str {
        match self {
            Placement::Distributed => "distributed",
            Placement::Reference => "reference",
            Placement::Local => "local",
        }
    }
}

/// How a foreign-key join runs under a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Both sides distributed and the FK pairs the key with the key: one shard.
    Colocated,
    /// The parent is replicated (or both sides stay on one node): local everywhere.
    Local,
    /// Needs rows from other shards (or is not allowed, e.g. reference -> distributed).
    CrossShard,
    /// Both sides too big to replicate and without the key: the join is local only
    /// because neither table is sharded.
    Unsharded,
}

/// A candidate key: for each carrying table, the column that holds the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub key_type: String,
    /// table -> column
    pub columns: BTreeMap<String, String>,
}

/// Candidates: union the columns that foreign keys pair, starting from every
/// primary-key, unique and foreign-key column; then attach same-named columns of
/// the same type in tables the class does not reach yet.
pub fn candidates(model: &SchemaModel) -> Vec<Candidate> {
    let mut idx: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut id = |t: &str, c: &str, parent: &mut Vec<usize>| -> usize {
        let key = (t.to_string(), c.to_string());
        if let Some(i) = idx.get(&key) {
            return *i;
        }
        let i = parent.len();
        parent.push(i);
        idx.insert(key, i);
        i
    };
    let tables: HashMap<&str, &Table> = model.tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let fk_cols: BTreeSet<(String, String)> = model
        .fks
        .iter()
        .flat_map(|fk| {
            fk.pairs.iter().flat_map(move |(c, p)| {
                [
                    (fk.child.clone(), c.clone()),
                    (fk.parent.clone(), p.clone()),
                ]
            })
        })
        .collect();
    for t in &model.tables {
        for c in t.pk.iter().chain(t.uniques.iter().flatten()) {
            id(&t.name, c, &mut parent);
        }
    }
    for fk in &model.fks {
        if !tables.contains_key(fk.child.as_str()) || !tables.contains_key(fk.parent.as_str()) {
            continue;
        }
        for (c, p) in &fk.pairs {
            let a = id(&fk.child, c, &mut parent);
            let b = id(&fk.parent, p, &mut parent);
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                parent[ra] = rb;
            }
        }
    }
    let mut classes: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let members: Vec<((String, String), usize)> =
        idx.iter().map(|(k, v)| (k.clone(), *v)).collect();
    for ((t, c), i) in members {
        let r = find(&mut parent, i);
        let cls = classes.entry(r).or_default();
        // a table with two columns in one class (a self-reference): keep its key column
        match cls.get(&t) {
            Some(existing)
                if tables
                    .get(t.as_str())
                    .is_some_and(|tb| tb.pk.contains(existing)) => {}
            _ => {
                cls.insert(t, c);
            }
        }
    }
    let mut out = Vec::new();
    for (_, mut cols) in classes {
        // the most common column name names the candidate
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for c in cols.values() {
            *counts.entry(c.as_str()).or_default() += 1;
        }
        let name = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let key_type = cols
            .iter()
            .find(|(_, c)| **c == name)
            .and_then(|(t, c)| tables.get(t.as_str()).and_then(|tb| tb.type_of(c)))
            .unwrap_or("")
            .to_string();
        for t in &model.tables {
            if !cols.contains_key(&t.name) && t.type_of(&name) == Some(key_type.as_str()) {
                // a column no foreign key pairs with anything joins by name
                let free = !fk_cols.contains(&(t.name.clone(), name.clone()));
                if free {
                    cols.insert(t.name.clone(), name.clone());
                }
            }
        }
        out.push(Candidate {
            name,
            key_type,
            columns: cols,
        });
    }
    // a class whose every column joined a bigger one by name is that one
    let all = out.clone();
    out.retain(|c| {
        !all.iter().any(|o| {
            o.columns.len() > c.columns.len()
                && c.columns
                    .iter()
                    .all(|(t, col)| o.columns.get(t) == Some(col))
        })
    });
    // two classes may share a name (e.g. "id" of different entities): keep them apart
    out.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(b.columns.len().cmp(&a.columns.len()))
    });
    out
}

/// Placement of every table for a candidate.
pub fn placements(model: &SchemaModel, cand: &Candidate) -> BTreeMap<String, Placement> {
    let max_rows = model.tables.iter().map(|t| t.rows).fold(0.0, f64::max);
    let small = REFERENCE_MIN_ROWS.max(0.01 * max_rows);
    let mut inbound: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for fk in &model.fks {
        if fk.child != fk.parent {
            inbound
                .entry(fk.parent.as_str())
                .or_default()
                .insert(fk.child.as_str());
        }
    }
    model
        .tables
        .iter()
        .map(|t| {
            let col = cand.columns.get(&t.name);
            let referenced_by = inbound.get(t.name.as_str()).map_or(0, |s| s.len());
            let p = match col {
                // the key's own dimension table (one row per key value), small and
                // referenced by many: replicate it, so joins to it are local everywhere
                Some(c)
                    if t.pk.len() == 1
                        && &t.pk[0] == c
                        && t.rows <= small
                        && referenced_by >= 2 =>
                {
                    Placement::Reference
                }
                Some(_) => Placement::Distributed,
                None if t.rows <= small => Placement::Reference,
                None => Placement::Local,
            };
            (t.name.clone(), p)
        })
        .collect()
}

/// Classify one foreign key under a placement.
pub fn classify_join(
    fk: &ForeignKey,
    cand: &Candidate,
    place: &BTreeMap<String, Placement>,
) -> JoinKind {
    use Placement::*;
    let (Some(c), Some(p)) = (place.get(&fk.child), place.get(&fk.parent)) else {
        return JoinKind::CrossShard;
    };
    match (c, p) {
        (Distributed, Distributed) => {
            let pairs_key = match (cand.columns.get(&fk.child), cand.columns.get(&fk.parent)) {
                (Some(kc), Some(kp)) => fk.pairs.iter().any(|(a, b)| a == kc && b == kp),
                _ => false,
            };
            if pairs_key {
                JoinKind::Colocated
            } else {
                JoinKind::CrossShard
            }
        }
        (_, Reference) => JoinKind::Local,
        (Local, Local) => JoinKind::Unsharded,
        _ => JoinKind::CrossShard,
    }
}
