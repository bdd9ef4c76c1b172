//! How bloat_report measures one relation: the pages it reads (through `reader`), the
//! statistics it trusts, and the arithmetic (`estimate`) that turns them into a row.
//! It decides nothing about which relations are in scope or how rows are ordered.

use super::catalog::{self, Kind, RelStats, Target};
use super::estimate::{self, ColumnStats};
use super::page;
use super::reader::{Opened, Strategy, BLCKSZ};
use crate::infra::error::Result;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use std::collections::HashMap;

/// How `bloat_report` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Statistics and catalog, with a bounded page sample: never reads a relation in full.
    Fast,
    /// Reads the heap pages the visibility map does not mark all-visible (FSM for the
    /// rest), and btree indexes in full.
    Approx,
    /// pgstattuple / pgstatindex: reads everything.
    Exact,
}

pub const MODES: [&str; 3] = ["fast", "approx", "exact"];

impl Mode {
    /// The mode one of [`MODES`] names.
    pub fn from_choice(s: &str) -> Mode {
        match s {
            "approx" => Mode::Approx,
            "exact" => Mode::Exact,
            _ => Mode::Fast,
        }
    }
}

/// One result row.
pub struct Row {
    pub schema: String,
    pub relation: String,
    pub kind: Kind,
    pub total_bytes: i64,
    pub est_bloat_bytes: i64,
    pub est_bloat_pct: f64,
    pub live_tuples: Option<i64>,
    pub dead_tuples: Option<i64>,
    pub last_vacuum: Option<TimestampWithTimeZone>,
    pub last_autovacuum: Option<TimestampWithTimeZone>,
    pub removable: Option<bool>,
    pub method: String,
    pub relid: pg_sys::Oid,
}

/// Enough sampled tuples to trust a measured average width.
const MIN_SAMPLE_TUPLES: u64 = 30;
/// Width assumed for a varlena column nobody has analyzed.
const UNKNOWN_VARLENA: f64 = 32.0;

/// A stable seed per relation and size, so the same relation gives the same
/// sample (and the same estimate) until it changes.
fn seed_for(t: &Target, nblocks: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in t
        .schema
        .bytes()
        .chain([0u8])
        .chain(t.relation.bytes())
        .chain([t.kind as u8])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ u64::from(nblocks)
}

/// Live tuples per the statistics: pg_stat's running count when it has seen the
/// table, else pg_class.reltuples (the last VACUUM/ANALYZE), else unknown.
fn live_from_stats(st: &RelStats) -> Option<(f64, &'static str)> {
    if st.has_stats {
        st.n_live.map(|n| (n.max(0) as f64, "pg_stat"))
    } else if st.reltuples >= 0.0 {
        Some((st.reltuples, "pg_class"))
    } else {
        None
    }
}

fn fillfactor(st: &RelStats, kind: Kind) -> f64 {
    let default = if kind == Kind::Index {
        estimate::BTREE_DEFAULT_FILLFACTOR
    } else {
        estimate::HEAP_DEFAULT_FILLFACTOR
    };
    if kind == Kind::Toast {
        return default;
    }
    estimate::reloption_int(&st.reloptions, "fillfactor")
        .map(|f| f as f64)
        .unwrap_or(default)
}

/// The report's state for one call.
pub struct Report {
    mode: Mode,
    sample_pages: u32,
    stats: HashMap<pg_sys::Oid, RelStats>,
    cols: HashMap<pg_sys::Oid, Vec<ColumnStats>>,
    pgstattuple: Option<String>,
    /// removable, per table, for its indexes
    table_removable: HashMap<pg_sys::Oid, Option<bool>>,
}

/// What the pages of a heap say about removability, and how many were read.
struct Probe {
    held: u64,
    removable: u64,
    pages: u64,
}

impl Report {
    fn stats(&self, oid: pg_sys::Oid) -> RelStats {
        self.stats.get(&oid).cloned().unwrap_or_default()
    }

    /// Column statistics of one relation, read on first use: with a page sample most
    /// relations never need them, and pg_stats is the costly part of a catalog read.
    fn cols(&mut self, t: &Target) -> Result<Vec<ColumnStats>> {
        if let Some(c) = self.cols.get(&t.oid) {
            return Ok(c.clone());
        }
        let fetched = if t.kind == Kind::Index {
            catalog::column_stats(&[], &[t.oid])?
        } else {
            catalog::column_stats(&[t.oid], &[])?
        };
        let c = fetched.get(&t.oid).cloned().unwrap_or_default();
        self.cols.insert(t.oid, c.clone());
        Ok(c)
    }

    fn row(&self, t: &Target, st: &RelStats) -> Row {
        Row {
            schema: t.schema.clone(),
            relation: t.relation.clone(),
            kind: t.kind,
            total_bytes: 0,
            est_bloat_bytes: 0,
            est_bloat_pct: 0.0,
            live_tuples: None,
            dead_tuples: None,
            last_vacuum: st.last_vacuum,
            last_autovacuum: st.last_autovacuum,
            removable: None,
            method: String::new(),
            relid: t.oid,
        }
    }

    /// Could VACUUM remove this heap's dead tuples now? Look at dead tuples on
    /// `already` (a page tally that classified them) and, if none were seen, at up to
    /// `sample_pages` pages the visibility map does not mark all-visible: only those
    /// can hold dead tuples.
    fn removable(&self, o: &Opened, t: &Target, dead: Option<i64>, already: Probe) -> (bool, u64) {
        let mut p = already;
        if dead.unwrap_or(1) > 0 && p.held == 0 && p.removable == 0 && self.sample_pages > 0 {
            let pages = o.nblocks();
            let want = self.sample_pages.saturating_mul(8).min(pages);
            let cands =
                estimate::sample_blocks(0, pages, want, seed_for(t, pages) ^ 0x5DEE_CE66_D1CE);
            let visible = o.all_visible(&cands);
            let probe: Vec<u32> = cands
                .iter()
                .zip(visible)
                .filter(|(_, v)| !v)
                .map(|(b, _)| *b)
                .take(self.sample_pages as usize)
                .collect();
            let s = o.read_heap(probe, o.horizon(), std::ptr::null_mut());
            p.held += s.dead_held;
            p.removable += s.dead_removable;
            p.pages += s.pages;
        }
        (
            estimate::removable(dead, p.held, p.removable, o.others_hold_older()),
            p.pages,
        )
    }

    /// A table's removability, for its indexes (computed once per table).
    fn removable_of_table(&mut self, table: &Target) -> Option<bool> {
        if let Some(r) = self.table_removable.get(&table.parent) {
            return *r;
        }
        let st = self.stats(table.parent);
        let parent = Target {
            oid: table.parent,
            kind: Kind::Table,
            ..table.clone()
        };
        let r = Opened::try_open(table.parent).map(|o| {
            let dead = st.has_stats.then_some(st.n_dead).flatten();
            self.removable(
                &o,
                &parent,
                dead,
                Probe {
                    held: 0,
                    removable: 0,
                    pages: 0,
                },
            )
            .0
        });
        self.table_removable.insert(table.parent, r);
        r
    }

    fn locked(&self, t: &Target, st: &RelStats) -> Row {
        let mut row = self.row(t, st);
        row.total_bytes = st.relpages.max(0) * BLCKSZ as i64;
        row.method = "skipped: another session holds a conflicting lock (VACUUM FULL, a rewrite, DROP); relpages shown"
            .into();
        row
    }

    fn heap(&mut self, t: &Target) -> Result<Row> {
        let st = self.stats(t.oid);
        let Some(o) = Opened::try_open(t.oid) else {
            return Ok(self.locked(t, &st));
        };
        let mut row = self.row(t, &st);
        let pages = o.nblocks();
        if pages == 0 {
            row.live_tuples = Some(0);
            row.dead_tuples = Some(0);
            row.removable = Some(true);
            row.method = "empty: no pages".into();
            return Ok(row);
        }
        let total = f64::from(pages) * BLCKSZ as f64;
        row.total_bytes = total as i64;
        let ff = fillfactor(&st, t.kind);
        let reserve = estimate::fillfactor_reserve(f64::from(pages), BLCKSZ as f64, ff);
        let stats_dead = st.has_stats.then_some(st.n_dead).flatten();
        let ff_note = if ff < 100.0 {
            format!(", fillfactor {ff} reserve excluded")
        } else {
            String::new()
        };
        match self.mode {
            Mode::Fast => {
                let horizon = o.horizon();
                let blocks =
                    estimate::sample_blocks(0, pages, self.sample_pages, seed_for(t, pages));
                let hp = o.read_heap(blocks, horizon, std::ptr::null_mut());
                let whole = pages > 0 && hp.pages == u64::from(pages);
                let sampled = if whole {
                    hp.tuple_bytes(1)
                } else {
                    hp.tuple_bytes(MIN_SAMPLE_TUPLES)
                };
                let cols = if sampled.is_some() || t.kind == Kind::Toast {
                    Vec::new()
                } else {
                    self.cols(t)?
                };
                let (width, width_src) = if let Some(w) = sampled {
                    (w, format!("measured on {} of {pages} pages", hp.pages))
                } else if t.kind == Kind::Toast {
                    (
                        estimate::toast_full_chunk_bytes(BLCKSZ as f64),
                        "full-size chunks assumed".to_string(),
                    )
                } else if estimate::widths_known(&cols) {
                    (
                        estimate::heap_tuple_bytes(&cols, UNKNOWN_VARLENA),
                        "pg_stats".to_string(),
                    )
                } else if let Some(w) = hp.tuple_bytes(1) {
                    (w, format!("measured on {} of {pages} pages", hp.pages))
                } else {
                    (
                        estimate::heap_tuple_bytes(&cols, UNKNOWN_VARLENA),
                        "pg_stats, unanalyzed columns guessed".to_string(),
                    )
                };
                let (live, live_src, fd, dead) = if whole {
                    // a small table: the sample is the whole table, measured as approx would
                    (
                        hp.live as f64,
                        "counted".to_string(),
                        (hp.free + hp.dead_len) as f64,
                        Some(hp.dead as i64),
                    )
                } else {
                    let (live, live_src) = match live_from_stats(&st) {
                        Some((n, src)) => (n, src.to_string()),
                        None if hp.pages > 0 => (
                            hp.live as f64 / hp.pages as f64 * f64::from(pages),
                            "sampled pages".to_string(),
                        ),
                        None => (0.0, "none (never analyzed)".to_string()),
                    };
                    let fd = estimate::heap_free_dead(
                        f64::from(pages),
                        BLCKSZ as f64,
                        live,
                        width,
                        hp.stubs_per_page(),
                    );
                    (live, live_src, fd, stats_dead)
                };
                let b = estimate::bloat(total, fd, reserve);
                let (removable, probed) = self.removable(
                    &o,
                    t,
                    dead,
                    Probe {
                        held: hp.dead_held,
                        removable: hp.dead_removable,
                        pages: hp.pages,
                    },
                );
                row.est_bloat_bytes = b.bytes.round() as i64;
                row.est_bloat_pct = b.pct;
                row.live_tuples = Some(live.round() as i64);
                row.dead_tuples = dead;
                row.removable = Some(removable);
                let kind = if self.sample_pages == 0 {
                    "catalog"
                } else {
                    "fast"
                };
                row.method = format!(
                    "{kind}: {} live ({live_src}) x {width:.1} B/tuple ({width_src}){ff_note}; read {probed} pages",
                    live.round()
                );
            }
            Mode::Approx => {
                // in chunks, so memory stays flat however large the table is
                let ring = Strategy::bulk();
                let horizon = o.horizon();
                let mut hp = page::HeapPages::default();
                let (mut skipped, mut fsm_free) = (0u64, 0u64);
                let mut start = 0u32;
                while start < pages {
                    let chunk: Vec<u32> = (start..pages.min(start.saturating_add(8192))).collect();
                    start = start.saturating_add(8192);
                    let visible = o.all_visible(&chunk);
                    let mut scan = Vec::with_capacity(chunk.len());
                    for (b, v) in chunk.into_iter().zip(visible) {
                        if v {
                            skipped += 1;
                            fsm_free += o.recorded_free(b);
                        } else {
                            scan.push(b);
                        }
                    }
                    hp.add(&o.read_heap(scan, horizon, ring.0));
                }
                let width = match hp.tuple_bytes(1) {
                    Some(w) => w,
                    None if t.kind == Kind::Toast => {
                        estimate::toast_full_chunk_bytes(BLCKSZ as f64)
                    }
                    None => estimate::heap_tuple_bytes(&self.cols(t)?, UNKNOWN_VARLENA),
                };
                let skipped_used = (skipped as f64
                    * (BLCKSZ as f64 - estimate::PAGE_HEADER - estimate::ITEM_ID)
                    - fsm_free as f64)
                    .max(0.0);
                let live = hp.live as f64 + skipped_used / width;
                let fd = (hp.free + hp.dead_len + fsm_free) as f64;
                let b = estimate::bloat(total, fd, reserve);
                row.est_bloat_bytes = b.bytes.round() as i64;
                row.est_bloat_pct = b.pct;
                row.live_tuples = Some(live.round() as i64);
                row.dead_tuples = Some(hp.dead as i64);
                row.removable = Some(estimate::removable(
                    Some(hp.dead as i64),
                    hp.dead_held,
                    hp.dead_removable,
                    o.others_hold_older(),
                ));
                row.method = format!(
                    "approx: read {} of {pages} pages (not all-visible), free space map for {skipped}{ff_note}",
                    hp.pages
                );
            }
            Mode::Exact => {
                let nsp = self.pgstattuple.clone().unwrap_or_default();
                let (table_len, live, dead, dead_len, free) = catalog::heap_exact(&nsp, t.oid)?;
                let pages = table_len as f64 / BLCKSZ as f64;
                let reserve = estimate::fillfactor_reserve(pages, BLCKSZ as f64, ff);
                let b = estimate::bloat(table_len as f64, (free + dead_len) as f64, reserve);
                let (removable, probed) = self.removable(
                    &o,
                    t,
                    Some(dead),
                    Probe {
                        held: 0,
                        removable: 0,
                        pages: 0,
                    },
                );
                row.total_bytes = table_len;
                row.est_bloat_bytes = b.bytes.round() as i64;
                row.est_bloat_pct = b.pct;
                row.live_tuples = Some(live);
                row.dead_tuples = Some(dead);
                row.removable = Some(removable);
                row.method = format!(
                    "exact: pgstattuple free_space + dead_tuple_len{ff_note}; removable from {probed} pages"
                );
            }
        }
        if t.kind != Kind::Toast {
            self.table_removable.insert(t.oid, row.removable);
        }
        Ok(row)
    }

    /// Heap rows an index points to: the table's live tuples, or for a partial
    /// index its own reltuples.
    fn index_tids(&self, t: &Target, st: &RelStats) -> Option<(f64, &'static str)> {
        if st.partial_index {
            return (st.reltuples >= 0.0).then_some((st.reltuples, "index reltuples"));
        }
        live_from_stats(&self.stats(t.parent))
            .or((st.reltuples >= 0.0).then_some((st.reltuples, "index reltuples")))
    }

    fn index(&mut self, t: &Target) -> Result<Row> {
        let st = self.stats(t.oid);
        let Some(o) = Opened::try_open(t.oid) else {
            return Ok(self.locked(t, &st));
        };
        let parent = self.stats(t.parent);
        let mut row = self.row(t, &parent);
        let pages = o.nblocks();
        let total = f64::from(pages) * BLCKSZ as f64;
        row.total_bytes = total as i64;
        let ff = fillfactor(&st, Kind::Index);
        let tids = self.index_tids(t, &st);
        row.live_tuples = tids.map(|(n, _)| n.round() as i64);
        row.removable = self.removable_of_table(t);
        match self.mode {
            Mode::Fast => {
                let blocks =
                    estimate::sample_blocks(1, pages, self.sample_pages, seed_for(t, pages));
                let whole = blocks.len() as u64 + 1 >= u64::from(pages);
                let bp = o.read_btree(blocks, std::ptr::null_mut());
                let kind = if self.sample_pages == 0 {
                    "catalog"
                } else {
                    "fast"
                };
                if whole && pages > 1 {
                    // a small index: the sample is the whole index, measured as approx would
                    let reserve = estimate::fillfactor_reserve(bp.leaf as f64, BLCKSZ as f64, ff);
                    let b = estimate::bloat(total, (bp.free + bp.dead_bytes) as f64, reserve);
                    row.est_bloat_bytes = b.bytes.round() as i64;
                    row.est_bloat_pct = b.pct;
                    row.dead_tuples = Some(bp.dead_items as i64);
                    row.method = format!(
                        "{kind}: all {pages} pages read (small index), leaf fillfactor {ff} reserve excluded"
                    );
                    return Ok(row);
                }
                let catalog_width = match (bp.tid_bytes(MIN_SAMPLE_TUPLES), bp.pivot_bytes()) {
                    (Some(_), Some(_)) => 0.0,
                    _ => estimate::index_tuple_bytes(&self.cols(t)?, UNKNOWN_VARLENA),
                };
                let (tid_bytes, width_src) = match bp.tid_bytes(MIN_SAMPLE_TUPLES) {
                    Some(w) => (w, format!("measured on {} of {pages} pages", bp.pages)),
                    None => (
                        catalog_width,
                        "pg_stats, no deduplication assumed".to_string(),
                    ),
                };
                let pivot = bp.pivot_bytes().unwrap_or(catalog_width);
                let empty_share = if bp.leaf + bp.empty > 0 {
                    bp.empty as f64 / (bp.leaf + bp.empty) as f64
                } else {
                    0.0
                };
                let layout =
                    estimate::btree_layout(f64::from(pages), BLCKSZ as f64, pivot, empty_share);
                let (n, n_src) = tids.unwrap_or((bp.tids as f64, "sampled pages"));
                let fd = estimate::btree_free_dead(
                    f64::from(pages),
                    BLCKSZ as f64,
                    layout,
                    n,
                    tid_bytes,
                    pivot,
                );
                let reserve = estimate::fillfactor_reserve(layout.leaf, BLCKSZ as f64, ff);
                let b = estimate::bloat(total, fd, reserve);
                row.est_bloat_bytes = b.bytes.round() as i64;
                row.est_bloat_pct = b.pct;
                row.method = format!(
                    "{kind}: {} heap rows ({n_src}) x {tid_bytes:.1} B/row ({width_src}), leaf fillfactor {ff} reserve excluded",
                    n.round()
                );
            }
            Mode::Approx => {
                let ring = Strategy::bulk();
                let bp = o.read_btree(1..pages, ring.0);
                let reserve = estimate::fillfactor_reserve(bp.leaf as f64, BLCKSZ as f64, ff);
                let b = estimate::bloat(total, (bp.free + bp.dead_bytes) as f64, reserve);
                row.est_bloat_bytes = b.bytes.round() as i64;
                row.est_bloat_pct = b.pct;
                row.dead_tuples = Some(bp.dead_items as i64);
                row.method = format!(
                    "approx: read all {pages} pages (a btree has no visibility map), leaf fillfactor {ff} reserve excluded"
                );
            }
            Mode::Exact => {
                let nsp = self.pgstattuple.clone().unwrap_or_default();
                let (table_len, dead, dead_len, free, leaves) = catalog::index_exact(&nsp, t.oid)?;
                let reserve = estimate::fillfactor_reserve(leaves as f64, BLCKSZ as f64, ff);
                let b = estimate::bloat(table_len as f64, (free + dead_len) as f64, reserve);
                row.total_bytes = table_len;
                row.est_bloat_bytes = b.bytes.round() as i64;
                row.est_bloat_pct = b.pct;
                row.dead_tuples = Some(dead);
                row.method = format!(
                    "exact: pgstattuple free_space + dead_tuple_len, leaf fillfactor {ff} reserve (pgstatindex leaf_pages) excluded"
                );
            }
        }
        Ok(row)
    }
}

/// Measure every relation in `list`, in order.
pub fn run(mode: Mode, list: &[Target], pgstattuple: Option<String>) -> Result<Vec<Row>> {
    let mut oids: Vec<pg_sys::Oid> = list.iter().flat_map(|t| [t.oid, t.parent]).collect();
    oids.sort_by_key(|o| o.to_u32());
    oids.dedup();
    let tables: Vec<pg_sys::Oid> = list
        .iter()
        .filter(|t| matches!(t.kind, Kind::Table | Kind::Matview))
        .map(|t| t.oid)
        .collect();
    let indexes: Vec<pg_sys::Oid> = list
        .iter()
        .filter(|t| t.kind == Kind::Index)
        .map(|t| t.oid)
        .collect();
    let sample_pages = crate::infra::gucs::bloat_sample_pages();
    let mut report = Report {
        mode,
        sample_pages,
        stats: catalog::rel_stats(&oids)?,
        // the catalog-only estimate needs every relation's column statistics: read them at once
        cols: if mode == Mode::Fast && sample_pages == 0 {
            catalog::column_stats(&tables, &indexes)?
        } else {
            HashMap::new()
        },
        pgstattuple,
        table_removable: HashMap::new(),
    };
    list.iter()
        .map(|t| {
            if t.kind.is_heap() {
                report.heap(t)
            } else {
                report.index(t)
            }
        })
        .collect()
}
