//! The index advisor's loop: read the caller's workload, analyze each statement,
//! generate candidates, cost every statement of a candidate's table with the candidate
//! as a hypothetical index, choose a small covering set, and store each advice as
//! evidence (so index_prove can find it by id). The session's own hypothetical
//! indexes are set aside meanwhile and put back afterwards, also on error.

use super::analyze::{self, Analyzed};
use super::candidates::{self, Candidate};
use super::choose::{self, Evaluated, Statement};
use super::hot;
use super::workload::{self, Entry};
use super::{define, inject, size, store};
use crate::infra::error::Result;
use crate::infra::evidence::{self, Gate};
use crate::infra::subxact::{self, Outcome};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Most candidates one call costs (the first ones generated win).
pub const MAX_CANDIDATES: usize = 2000;

/// One advised index, as index_advice returns it.
#[derive(Debug, Clone)]
pub struct Advice {
    pub id: i64,
    pub table: String,
    pub create_index: String,
    pub queryids: Vec<i64>,
    pub served: Vec<String>,
    pub cost_before: f64,
    pub cost_after: f64,
    pub savings_pct: f64,
    pub size_bytes: i64,
    pub write_overhead_bytes: i64,
    pub why: String,
}

/// What one run saw, for the notice.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub statements: usize,
    pub analyzed: usize,
    pub skipped: usize,
    pub candidates: usize,
    /// Why the first skipped statement could not be analyzed.
    pub first_error: Option<String>,
}

/// Puts the session's hypothetical indexes back when the advisor ends.
pub struct SetAside(Vec<store::HypoIndex>);

impl SetAside {
    pub fn take() -> Self {
        let all = store::all();
        for i in &all {
            store::drop(i.oid);
        }
        SetAside(all)
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        for i in self.0.drain(..) {
            store::add(i);
        }
    }
}

/// Removes one candidate from the store when its costing ends, also on error.
struct Trial(pgrx::pg_sys::Oid);

impl Drop for Trial {
    fn drop(&mut self) {
        store::drop(self.0);
    }
}

pub fn short(query: &str) -> String {
    let flat: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 60 {
        format!("{}…", flat.chars().take(59).collect::<String>())
    } else {
        flat
    }
}

struct Costed {
    cand: Candidate,
    index: store::HypoIndex,
    size_bytes: i64,
}

pub fn advise(min_calls: i64, min_savings_pct: f64, top_n: usize) -> Result<(Vec<Advice>, Seen)> {
    let entries = workload::statements(min_calls)?;
    let mut seen = Seen {
        statements: entries.len(),
        ..Default::default()
    };
    let _aside = SetAside::take();

    // analyze each statement and plan it once as it is
    let mut stmts: Vec<(Entry, Analyzed, f64)> = Vec::new();
    for e in entries {
        let r = subxact::run(Outcome::Commit, || {
            crate::infra::search_path::as_caller(|| analyze::analyze(&e.query))
                .filter(|a| !a.shapes.is_empty())
                .map(|a| {
                    let base = analyze::generic_cost(&a, false);
                    (a, base)
                })
        });
        match r {
            Ok(Some((a, base))) => stmts.push((e, a, base)),
            Ok(None) => {}
            Err(err) => {
                seen.skipped += 1;
                if seen.first_error.is_none() {
                    let (code, msg) = subxact::describe(&err);
                    seen.first_error = Some(format!("{msg} ({code}) in: {}", short(&e.query)));
                }
            }
        }
    }
    seen.analyzed = stmts.len();

    // candidates from every statement, deduplicated, minus what existing indexes serve
    let relids: Vec<u32> = stmts
        .iter()
        .flat_map(|(_, a, _)| a.shapes.iter().map(|s| s.relid))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let existing = workload::existing_keys(&relids)?;
    let mut cands: Vec<Candidate> = Vec::new();
    let mut defs = BTreeSet::new();
    for (_, a, _) in &stmts {
        for s in &a.shapes {
            let ex = existing.get(&s.relid).map(Vec::as_slice).unwrap_or(&[]);
            for c in candidates::generate(s) {
                if cands.len() < MAX_CANDIDATES
                    && !candidates::served_by_existing(&c, ex)
                    && defs.insert(c.create_sql())
                {
                    cands.push(c);
                }
            }
        }
    }
    seen.candidates = cands.len();

    // cost each candidate on every statement that uses its table
    let mut by_table: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, (_, a, _)) in stmts.iter().enumerate() {
        for s in &a.shapes {
            by_table.entry(s.relid).or_default().push(i);
        }
    }
    // the columns some statement tests for equality (or joins on), per table
    let equality: BTreeSet<(u32, i16)> = stmts
        .iter()
        .flat_map(|(_, a, _)| a.shapes.iter())
        .flat_map(|s| {
            s.uses
                .iter()
                .filter(|u| u.kind == candidates::Use::Eq)
                .map(move |u| (s.relid, u.attnum))
        })
        .collect();
    let mut costed: Vec<Costed> = Vec::new();
    let mut evaluated: Vec<Evaluated> = Vec::new();
    for c in cands {
        let sql = c.create_sql();
        let users = by_table.get(&c.relid).cloned().unwrap_or_default();
        let r = subxact::run(Outcome::Commit, || -> Result<_> {
            let index = define::define(&sql)?;
            let _trial = Trial(index.oid);
            store::add(index.clone());
            let costs: Vec<(usize, f64)> = users
                .iter()
                .map(|&i| (i, analyze::generic_cost(&stmts[i].1, true)))
                .collect();
            // SAFETY: the table was resolved (and locked) by define
            let (pages, _) = unsafe { inject::estimate_standalone(&index) };
            Ok((index, costs, i64::from(pages) * size::BLOCK_SIZE as i64))
        });
        if let Ok(Ok((index, costs, size_bytes))) = r {
            let eq_keys = c
                .keys
                .iter()
                .take_while(|k| equality.contains(&(c.relid, k.attnum)))
                .count();
            evaluated.push(Evaluated {
                costs,
                size_bytes: size_bytes as f64,
                eq_keys,
            });
            costed.push(Costed {
                cand: c,
                index,
                size_bytes,
            });
        }
    }

    let workload: Vec<Statement> = stmts
        .iter()
        .map(|(e, _, base)| Statement {
            calls: e.calls as f64,
            base: *base,
        })
        .collect();
    let picks = choose::choose(&workload, &evaluated, min_savings_pct, top_n);
    let picked_tables: Vec<u32> = picks
        .iter()
        .map(|p| costed[p.candidate].cand.relid)
        .collect();
    let writes = workload::writes(&picked_tables)?;

    let mut out = Vec::new();
    for mut p in picks {
        // the statements an index serves, the one it saves most on first; the workload's
        // own order follows measured time, which differs from run to run
        p.served.sort_by(|(sa, ba, aa), (sb, bb, ab)| {
            let saved = |s: usize, b: f64, a: f64| (b - a) * stmts[s].0.calls as f64;
            saved(*sb, *bb, *ab)
                .total_cmp(&saved(*sa, *ba, *aa))
                .then_with(|| stmts[*sa].0.query.cmp(&stmts[*sb].0.query))
        });
        let k = &costed[p.candidate];
        let width: i32 = k.index.columns.iter().map(|c| c.width).sum();
        let (table_writes, existing_entries) =
            writes.get(&k.cand.relid).copied().unwrap_or_default();
        let updates: Vec<hot::Update> = stmts
            .iter()
            .filter_map(|(e, a, _)| match &a.updated {
                Some((rel, cols)) if *rel == k.cand.relid => Some(hot::Update {
                    columns: cols.clone(),
                    rows: e.rows,
                }),
                _ => None,
            })
            .collect();
        let blocking = hot::blocking_columns(pgrx::pg_sys::Oid::from(k.cand.relid));
        let broken = hot::broken_hot(
            &hot::index_columns(&k.index),
            &blocking,
            &updates,
            table_writes.hot_updates,
        );
        let entry = size::entry_bytes(width);
        let overhead = hot::overhead_bytes(entry, table_writes, broken, existing_entries);
        let create = k.cand.create_sql();
        let served: Vec<serde_json::Value> = p
            .served
            .iter()
            .map(|(s, before, after)| {
                let e = &stmts[*s].0;
                json!({"queryid": e.queryid, "query": e.query, "calls": e.calls,
                       "cost_before": before, "cost_after": after})
            })
            .collect();
        let calls: i64 = p.served.iter().map(|(s, _, _)| stmts[*s].0.calls).sum();
        let mut why = format!(
            "{}; {} statement(s), {} call(s); weighted cost {:.0} -> {:.0}",
            k.cand.why,
            p.served.len(),
            calls,
            p.weighted_before,
            p.weighted_after
        );
        if broken > 0 {
            why.push_str(&format!(
                "; makes about {broken} of the table's {} HOT updates non-HOT (they set a column it covers), so each writes every index",
                table_writes.hot_updates
            ));
        }
        let payload = json!({
            "create_index": create,
            "on_clause": k.cand.on_clause(),
            "keys": k.cand.keys.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "include": k.cand.include,
            "predicate": k.cand.predicate,
            "table": k.cand.table,
            "relid": k.cand.relid,
            "served": served,
            "weighted_cost_before": p.weighted_before,
            "weighted_cost_after": p.weighted_after,
            "savings_pct": p.savings_pct,
            "est_size_bytes": k.size_bytes,
            "write_overhead_bytes": overhead,
            "writes": {"inserts": table_writes.inserts, "updates": table_writes.updates,
                       "hot_updates": table_writes.hot_updates, "hot_updates_broken": broken,
                       "entry_bytes": entry, "existing_entry_bytes": existing_entries},
            "why": why,
        });
        let settings =
            json!({"min_calls": min_calls, "min_savings_pct": min_savings_pct, "top_n": top_n});
        let id = evidence::store(
            Gate::Index,
            Some("index_advice"),
            Some(&create),
            settings,
            payload,
        );
        out.push(Advice {
            id,
            table: k.cand.table.clone(),
            create_index: create,
            queryids: p
                .served
                .iter()
                .map(|(s, _, _)| stmts[*s].0.queryid)
                .collect(),
            served: p
                .served
                .iter()
                .map(|(s, _, _)| short(&stmts[*s].0.query))
                .collect(),
            cost_before: p.weighted_before,
            cost_after: p.weighted_after,
            savings_pct: p.savings_pct,
            size_bytes: k.size_bytes,
            write_overhead_bytes: overhead,
            why,
        });
    }
    Ok((out, seen))
}
