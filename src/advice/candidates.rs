//! Candidate indexes for one statement's use of one table, from the columns its
//! WHERE/JOIN conditions, ORDER BY and GROUP BY name: single columns, multi-column keys
//! (equality columns first, then one range column, then the sort keys), covering
//! versions (INCLUDE the other columns the statement reads, for index-only scans) and
//! partial versions (WHERE the constant predicates the statement has). Pure: no pgrx,
//! names arrive already quoted.

use std::collections::BTreeSet;

/// How a statement uses a column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `col = value`, `col = ANY(...)`, or a join key.
    Eq,
    /// `col < value`, BETWEEN, a row comparison's leading column.
    Range,
    /// An ORDER BY key (all ORDER BY keys are on this table).
    Sort { desc: bool },
    /// A GROUP BY key.
    Group,
}

/// One column use, in the order the statement names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUse {
    pub attnum: i16,
    /// The column name, already quoted as an identifier.
    pub name: String,
    pub kind: Use,
}

/// A constant predicate on the table (`status = 'paid'`, `order_id IS NOT NULL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstPred {
    /// The predicate as SQL over the table's columns.
    pub text: String,
    /// The column an equality predicate fixes (such a column need not be a key).
    pub fixes: Option<i16>,
}

/// What one statement does with one table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableShape {
    pub relid: u32,
    /// The table as a quoted qualified name.
    pub table: String,
    pub uses: Vec<ColumnUse>,
    /// Every column the statement reads from the table: (attnum, quoted name).
    pub referenced: Vec<(i16, String)>,
    pub const_preds: Vec<ConstPred>,
}

/// One key column of a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub attnum: i16,
    pub name: String,
    pub desc: bool,
}

/// A candidate index on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub relid: u32,
    pub table: String,
    pub keys: Vec<Key>,
    pub include: Vec<String>,
    pub predicate: Option<String>,
    /// Which uses it was built from, for the advice's "why".
    pub why: String,
}

impl Candidate {
    /// The CREATE INDEX CONCURRENTLY statement that builds it.
    pub fn create_sql(&self) -> String {
        format!("CREATE INDEX CONCURRENTLY {}", self.on_clause())
    }

    /// Everything after the index name: `ON table (keys) INCLUDE (...) WHERE ...`.
    pub fn on_clause(&self) -> String {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                if k.desc {
                    format!("{} DESC", k.name)
                } else {
                    k.name.clone()
                }
            })
            .collect();
        let mut sql = format!("ON {} ({})", self.table, keys.join(", "));
        if !self.include.is_empty() {
            sql.push_str(&format!(" INCLUDE ({})", self.include.join(", ")));
        }
        if let Some(p) = &self.predicate {
            sql.push_str(&format!(" WHERE {p}"));
        }
        sql
    }

    pub fn key_attnums(&self) -> Vec<i16> {
        self.keys.iter().map(|k| k.attnum).collect()
    }
}

/// Most columns an INCLUDE list gets; a wider covering index is rarely worth its size.
pub const MAX_INCLUDE: usize = 4;
/// Most key columns of a candidate.
pub const MAX_KEYS: usize = 5;

fn push_unique(keys: &mut Vec<Key>, u: &ColumnUse, desc: bool) {
    if keys.len() < MAX_KEYS && !keys.iter().any(|k| k.attnum == u.attnum) {
        keys.push(Key {
            attnum: u.attnum,
            name: u.name.clone(),
            desc,
        });
    }
}

fn names(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The candidates for one statement's use of one table, without duplicates.
pub fn generate(shape: &TableShape) -> Vec<Candidate> {
    let fixed: BTreeSet<i16> = shape.const_preds.iter().filter_map(|p| p.fixes).collect();
    let of = |pred: &dyn Fn(Use) -> bool| -> Vec<&ColumnUse> {
        shape.uses.iter().filter(|u| pred(u.kind)).collect()
    };
    let eq = of(&|k| k == Use::Eq);
    let range = of(&|k| k == Use::Range);
    let sort = of(&|k| matches!(k, Use::Sort { .. }));
    let group = of(&|k| k == Use::Group);

    let mut keysets: Vec<(Vec<Key>, String)> = Vec::new();
    // single columns: each equality or range column, and the leading sort/group key
    for u in eq
        .iter()
        .chain(range.iter())
        .chain(sort.first())
        .chain(group.first())
    {
        let desc = matches!(u.kind, Use::Sort { desc: true });
        let what = match u.kind {
            Use::Eq => "equality",
            Use::Range => "range",
            Use::Sort { .. } => "sort",
            Use::Group => "group",
        };
        keysets.push((
            vec![Key {
                attnum: u.attnum,
                name: u.name.clone(),
                desc,
            }],
            format!("{what} on {}", u.name),
        ));
    }
    let mut eq_keys = Vec::new();
    for u in &eq {
        push_unique(&mut eq_keys, u, false);
    }
    if eq_keys.len() > 1 {
        keysets.push((eq_keys.clone(), format!("equality on {}", names(&eq_keys))));
    }
    if let Some(r) = range.first() {
        let mut k = eq_keys.clone();
        push_unique(&mut k, r, false);
        if k.len() > 1 {
            keysets.push((
                k,
                format!("equality on {}, then range on {}", names(&eq_keys), r.name),
            ));
        }
    }
    if !sort.is_empty() {
        let mut k = eq_keys.clone();
        for u in &sort {
            push_unique(&mut k, u, matches!(u.kind, Use::Sort { desc: true }));
        }
        if k.len() > 1 {
            keysets.push((
                k,
                format!(
                    "equality on {}, then the ORDER BY keys",
                    if eq_keys.is_empty() {
                        "nothing".to_string()
                    } else {
                        names(&eq_keys)
                    }
                ),
            ));
        }
    }
    if !group.is_empty() {
        let mut k = eq_keys.clone();
        for u in &group {
            push_unique(&mut k, u, false);
        }
        if k.len() > 1 {
            keysets.push((k, "equality, then the GROUP BY keys".to_string()));
        }
    }

    let mut out: Vec<Candidate> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut add = |c: Candidate, out: &mut Vec<Candidate>| {
        if !c.keys.is_empty() && seen.insert(c.create_sql()) {
            out.push(c);
        }
    };
    let predicate = if shape.const_preds.is_empty() {
        None
    } else {
        Some(
            shape
                .const_preds
                .iter()
                .map(|p| p.text.clone())
                .collect::<Vec<_>>()
                .join(" AND "),
        )
    };
    for (keys, why) in keysets {
        let base = Candidate {
            relid: shape.relid,
            table: shape.table.clone(),
            keys: keys.clone(),
            include: Vec::new(),
            predicate: None,
            why: why.clone(),
        };
        // covering: the other columns the statement reads, when there are few
        let include: Vec<String> = shape
            .referenced
            .iter()
            .filter(|(a, _)| !keys.iter().any(|k| k.attnum == *a))
            .map(|(_, n)| n.clone())
            .collect();
        if !include.is_empty() && include.len() <= MAX_INCLUDE {
            add(
                Candidate {
                    include,
                    why: format!("{why}; covering (index-only scan)"),
                    ..base.clone()
                },
                &mut out,
            );
        }
        if let Some(p) = &predicate {
            // a column the predicate fixes to one value need not be a key
            let rest: Vec<Key> = keys
                .iter()
                .filter(|k| !fixed.contains(&k.attnum))
                .cloned()
                .collect();
            if !rest.is_empty() {
                add(
                    Candidate {
                        keys: rest,
                        predicate: Some(p.clone()),
                        why: format!("{why}; partial on the constant predicate"),
                        ..base.clone()
                    },
                    &mut out,
                );
            }
        }
        add(base, &mut out);
    }
    out
}

/// Is this candidate already served by an existing index, i.e. are its key columns
/// (in order) a prefix of one existing index's keys, with nothing else asked for?
/// `existing` holds each usable plain btree index's key column numbers.
pub fn served_by_existing(c: &Candidate, existing: &[Vec<i16>]) -> bool {
    if !c.include.is_empty() || c.predicate.is_some() {
        return false;
    }
    let keys = c.key_attnums();
    existing
        .iter()
        .any(|e| e.len() >= keys.len() && e[..keys.len()] == keys[..])
}

#[cfg(test)]
mod unit {
    use super::*;

    fn u(attnum: i16, name: &str, kind: Use) -> ColumnUse {
        ColumnUse {
            attnum,
            name: name.into(),
            kind,
        }
    }

    fn shape(uses: Vec<ColumnUse>) -> TableShape {
        TableShape {
            relid: 1,
            table: "shop.orders".into(),
            uses,
            ..Default::default()
        }
    }

    fn sqls(c: &[Candidate]) -> Vec<String> {
        c.iter().map(Candidate::create_sql).collect()
    }

    #[test]
    fn equality_then_range_then_sort() {
        let s = shape(vec![
            u(3, "created_at", Use::Range),
            u(1, "tenant_id", Use::Eq),
            u(3, "created_at", Use::Sort { desc: true }),
            u(2, "order_id", Use::Sort { desc: true }),
        ]);
        let got = sqls(&generate(&s));
        assert!(got.contains(&"CREATE INDEX CONCURRENTLY ON shop.orders (tenant_id)".to_string()));
        assert!(got.contains(&"CREATE INDEX CONCURRENTLY ON shop.orders (created_at)".to_string()));
        assert!(got.contains(
            &"CREATE INDEX CONCURRENTLY ON shop.orders (tenant_id, created_at)".to_string()
        ));
        assert!(got.contains(
            &"CREATE INDEX CONCURRENTLY ON shop.orders (tenant_id, created_at DESC, order_id DESC)"
                .to_string()
        ));
        // equality columns always lead
        assert!(!got.iter().any(|s| s.contains("(created_at, tenant_id")));
    }

    #[test]
    fn covering_includes_the_other_read_columns() {
        let mut s = shape(vec![
            u(1, "tenant_id", Use::Eq),
            u(4, "account_id", Use::Eq),
        ]);
        s.referenced = vec![
            (1, "tenant_id".into()),
            (4, "account_id".into()),
            (6, "amount_cents".into()),
        ];
        let got = sqls(&generate(&s));
        assert!(got.contains(
            &"CREATE INDEX CONCURRENTLY ON shop.orders (tenant_id, account_id) INCLUDE (amount_cents)"
                .to_string()
        ));
        assert!(got.contains(
            &"CREATE INDEX CONCURRENTLY ON shop.orders (tenant_id, account_id)".to_string()
        ));
    }

    #[test]
    fn too_many_read_columns_means_no_covering_candidate() {
        let mut s = shape(vec![u(1, "a", Use::Eq)]);
        s.referenced = (1..=7).map(|i| (i, format!("c{i}"))).collect();
        assert!(generate(&s).iter().all(|c| c.include.is_empty()));
    }

    #[test]
    fn partial_drops_the_fixed_column_from_the_key() {
        let mut s = shape(vec![
            u(1, "tenant_id", Use::Eq),
            u(5, "status", Use::Eq),
            u(3, "created_at", Use::Sort { desc: false }),
        ]);
        s.const_preds = vec![ConstPred {
            text: "status = 'paid'::text".into(),
            fixes: Some(5),
        }];
        let got = sqls(&generate(&s));
        assert!(got.contains(
            &"CREATE INDEX CONCURRENTLY ON shop.orders (tenant_id, created_at) WHERE status = 'paid'::text"
                .to_string()
        ));
        // no candidate keyed only on the fixed column is made partial
        assert!(!got.iter().any(|s| s.contains("(status) WHERE")));
    }

    #[test]
    fn no_uses_no_candidates() {
        assert!(generate(&shape(vec![])).is_empty());
    }

    #[test]
    fn duplicates_are_removed() {
        let s = shape(vec![u(1, "a", Use::Eq), u(1, "a", Use::Eq)]);
        let got = sqls(&generate(&s));
        let mut d = got.clone();
        d.dedup();
        assert_eq!(got.len(), d.len());
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn existing_prefix_serves_a_candidate() {
        let s = shape(vec![
            u(1, "tenant_id", Use::Eq),
            u(2, "customer_id", Use::Eq),
        ]);
        let c = generate(&s);
        let existing = vec![vec![1, 2, 3]];
        let kept: Vec<String> = c
            .iter()
            .filter(|c| !served_by_existing(c, &existing))
            .map(Candidate::create_sql)
            .collect();
        assert_eq!(
            kept,
            vec!["CREATE INDEX CONCURRENTLY ON shop.orders (customer_id)".to_string()]
        );
    }
}
