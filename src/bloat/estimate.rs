//! Bloat arithmetic, free of pgrx types so `#[test]`s cover it without a server.
//!
//! Every estimate here aims at the figure `pgstattuple` measures: the bytes of a
//! relation that hold neither a live tuple nor fixed page overhead (free space
//! plus dead tuples), less the space its fillfactor keeps free on purpose. The
//! method is the same for every relation kind: take the relation's size, subtract
//! the page overhead and `live items x stored bytes per item`, and what is left is
//! free or dead. Only the "stored bytes per item" differs: from `pg_stats` widths
//! (catalog), or measured on a small page sample, which is what corrects the known
//! failure cases (TOAST chunk packing, btree deduplication, alignment).

/// `SizeOfPageHeaderData`.
pub const PAGE_HEADER: f64 = 24.0;
/// `sizeof(ItemIdData)`: one line pointer.
pub const ITEM_ID: f64 = 4.0;
/// `MAXIMUM_ALIGNOF` on every platform PostgreSQL builds for here.
pub const MAXALIGN: f64 = 8.0;
/// `SizeofHeapTupleHeader`.
pub const HEAP_TUPLE_HEADER: f64 = 23.0;
/// `sizeof(IndexTupleData)`.
pub const INDEX_TUPLE_HEADER: f64 = 8.0;
/// `MAXALIGN(sizeof(BTPageOpaqueData))`.
pub const BTREE_SPECIAL: f64 = 16.0;
/// `BTREE_DEFAULT_FILLFACTOR` (leaf pages).
pub const BTREE_DEFAULT_FILLFACTOR: f64 = 90.0;
/// `BTREE_NONLEAF_FILLFACTOR`: how full CREATE INDEX packs internal pages.
pub const BTREE_NONLEAF_FILLFACTOR: f64 = 70.0;
/// Heaps and TOAST tables default to packing pages full.
pub const HEAP_DEFAULT_FILLFACTOR: f64 = 100.0;

/// Round up to a multiple of `align`.
pub fn align_up(n: f64, align: f64) -> f64 {
    (n / align).ceil() * align
}

/// Round down to a multiple of `align`.
pub fn align_down(n: f64, align: f64) -> f64 {
    (n / align).floor() * align
}

/// What the catalog and `pg_stats` say about one column (heap) or one index attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnStats {
    /// `pg_attribute.attlen`: > 0 fixed width, -1 varlena, -2 C string.
    pub attlen: i16,
    /// `pg_attribute.attalign`: b'c', b's', b'i' or b'd'.
    pub align: u8,
    /// `pg_stats.avg_width` (average stored width of the non-null values), if analyzed.
    pub avg_width: Option<f64>,
    /// `pg_stats.null_frac`, 0 if unknown.
    pub null_frac: f64,
    /// A dropped column: stored as NULL in new rows, but still in the null bitmap.
    pub dropped: bool,
}

impl ColumnStats {
    fn align_bytes(&self) -> f64 {
        match self.align {
            b's' => 2.0,
            b'i' => 4.0,
            b'd' => 8.0,
            _ => 1.0,
        }
    }

    /// Width of a non-null value, when known.
    fn width(&self) -> Option<f64> {
        if self.attlen > 0 {
            Some(f64::from(self.attlen))
        } else {
            self.avg_width
        }
    }
}

/// True when every live column has a width (fixed length or analyzed).
pub fn widths_known(cols: &[ColumnStats]) -> bool {
    cols.iter()
        .filter(|c| !c.dropped)
        .all(|c| c.width().is_some())
}

/// Probability that a row has at least one NULL (so carries a null bitmap),
/// assuming columns are NULL independently. Dropped columns make it certain.
fn null_probability(cols: &[ColumnStats]) -> f64 {
    if cols.iter().any(|c| c.dropped) {
        return 1.0;
    }
    1.0 - cols
        .iter()
        .map(|c| 1.0 - c.null_frac.clamp(0.0, 1.0))
        .product::<f64>()
}

/// Expected bytes of the data part, laid out column by column with each value's
/// alignment. Short varlenas (under 127 bytes) are stored with a 1-byte header and
/// no alignment; longer ones keep their type's alignment. Unknown varlena widths
/// count as `unknown_varlena`.
fn data_width(cols: &[ColumnStats], start: f64, unknown_varlena: f64) -> f64 {
    let mut off = start;
    for c in cols.iter().filter(|c| !c.dropped) {
        let present = 1.0 - c.null_frac.clamp(0.0, 1.0);
        if present <= 0.0 {
            continue;
        }
        let w = c.width().unwrap_or(unknown_varlena);
        let align = if c.attlen == -1 && w < 127.0 {
            1.0
        } else {
            c.align_bytes()
        };
        let pad = align_up(off, align) - off;
        off += present * (pad + w);
    }
    off - start
}

/// Expected stored bytes of one heap tuple, including its line pointer, from
/// column statistics: header (with a null bitmap when rows have NULLs), the
/// aligned data, MAXALIGN padding and the 4-byte line pointer.
pub fn heap_tuple_bytes(cols: &[ColumnStats], unknown_varlena: f64) -> f64 {
    let natts = cols.len() as f64;
    let p_null = null_probability(cols);
    let hoff_plain = align_up(HEAP_TUPLE_HEADER, MAXALIGN);
    let hoff_nulls = align_up(HEAP_TUPLE_HEADER + (natts / 8.0).ceil(), MAXALIGN);
    let hoff = (1.0 - p_null) * hoff_plain + p_null * hoff_nulls;
    let data = data_width(cols, 0.0, unknown_varlena);
    let t_len = hoff + data;
    // fixed-width rows without NULLs all have the same length: pad exactly;
    // otherwise lengths spread over the 8-byte grid and pad by 3.5 bytes on average
    let fixed = p_null == 0.0 && cols.iter().all(|c| c.attlen > 0);
    let pad = if fixed {
        align_up(t_len, MAXALIGN) - t_len
    } else {
        (MAXALIGN - 1.0) / 2.0
    };
    t_len + pad + ITEM_ID
}

/// Expected stored bytes of one btree leaf tuple without deduplication, including
/// its line pointer: `IndexTupleData`, an optional 4-byte null bitmap, the aligned
/// key (and INCLUDE) columns, MAXALIGN'd as `index_form_tuple` does.
pub fn index_tuple_bytes(cols: &[ColumnStats], unknown_varlena: f64) -> f64 {
    let p_null = null_probability(cols);
    let hoff_plain = align_up(INDEX_TUPLE_HEADER, MAXALIGN);
    let hoff_nulls = align_up(INDEX_TUPLE_HEADER + 4.0, MAXALIGN);
    let hoff = (1.0 - p_null) * hoff_plain + p_null * hoff_nulls;
    let size = hoff + data_width(cols, hoff, unknown_varlena);
    let fixed = p_null == 0.0 && cols.iter().all(|c| c.attlen > 0);
    let padded = if fixed {
        align_up(size, MAXALIGN)
    } else {
        size + (MAXALIGN - 1.0) / 2.0
    };
    padded + ITEM_ID
}

/// `TOAST_MAX_CHUNK_SIZE` for a block size: four chunk tuples fill a page.
pub fn toast_max_chunk(blcksz: f64) -> f64 {
    let per_tuple = align_down(
        (blcksz - align_up(PAGE_HEADER + 4.0 * ITEM_ID, MAXALIGN)) / 4.0,
        MAXALIGN,
    );
    // header, chunk_id oid, chunk_seq int4, the bytea's 4-byte varlena header
    per_tuple - align_up(HEAP_TUPLE_HEADER, MAXALIGN) - 4.0 - 4.0 - 4.0
}

/// Stored bytes of a full TOAST chunk tuple, line pointer included: the
/// catalog-only guess for a TOAST table, which cannot see partial chunks.
pub fn toast_full_chunk_bytes(blcksz: f64) -> f64 {
    align_up(HEAP_TUPLE_HEADER, MAXALIGN) + 12.0 + toast_max_chunk(blcksz) + ITEM_ID
}

/// Space reserved on purpose by a fillfactor below 100: never bloat.
pub fn fillfactor_reserve(pages: f64, blcksz: f64, fillfactor: f64) -> f64 {
    pages * blcksz * (100.0 - fillfactor.clamp(10.0, 100.0)) / 100.0
}

/// Free plus dead bytes of a heap (or TOAST table), counted the way pgstattuple
/// does: everything except page headers, the one line pointer
/// `PageGetHeapFreeSpace` holds back per page, line pointers left without a tuple
/// (`stubs_per_page`, measured on a sample; 0 when unknown) and the live tuples.
pub fn heap_free_dead(
    pages: f64,
    blcksz: f64,
    live: f64,
    tuple_bytes: f64,
    stubs_per_page: f64,
) -> f64 {
    let total = pages * blcksz;
    let overhead = pages * (PAGE_HEADER + ITEM_ID + stubs_per_page * ITEM_ID);
    (total - overhead - live * tuple_bytes).clamp(0.0, total)
}

/// How a btree's pages split into the metapage, internal pages, leaves and empty
/// (deleted, half-dead or never used) pages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BtreeLayout {
    pub leaf: f64,
    pub internal: f64,
    pub empty: f64,
}

/// Internal pages of a btree with `pages` blocks whose pivot tuples take
/// `pivot_bytes` each (line pointer included): leaves / (fanout - 1), the sum of
/// the geometric series of upper levels, at the fill CREATE INDEX leaves them.
/// `empty_share` of the lowest level (measured on a sample) is empty pages.
pub fn btree_layout(pages: f64, blcksz: f64, pivot_bytes: f64, empty_share: f64) -> BtreeLayout {
    if pages <= 1.0 {
        return BtreeLayout {
            leaf: 0.0,
            internal: 0.0,
            empty: 0.0,
        };
    }
    let usable = (blcksz - PAGE_HEADER - BTREE_SPECIAL) * BTREE_NONLEAF_FILLFACTOR / 100.0;
    let fanout = (usable / pivot_bytes.max(ITEM_ID + INDEX_TUPLE_HEADER))
        .floor()
        .max(3.0);
    let data = pages - 1.0;
    // lowest + lowest/(fanout-1) = data
    let lowest = (data * (fanout - 1.0) / fanout).max(1.0);
    let empty = lowest * empty_share.clamp(0.0, 1.0);
    BtreeLayout {
        leaf: lowest - empty,
        internal: (data - lowest).max(0.0),
        empty,
    }
}

/// Free plus dead bytes of a btree as pgstattuple counts them: the metapage and
/// internal pages are overhead, and so are each leaf's header, special space, high
/// key and the line pointer `PageGetFreeSpace` holds back; empty pages are free.
pub fn btree_free_dead(
    pages: f64,
    blcksz: f64,
    layout: BtreeLayout,
    tids: f64,
    tid_bytes: f64,
    pivot_bytes: f64,
) -> f64 {
    let total = pages * blcksz;
    let overhead = blcksz.min(total)
        + layout.internal * blcksz
        + layout.leaf * (PAGE_HEADER + BTREE_SPECIAL + ITEM_ID + pivot_bytes);
    (total - overhead - tids * tid_bytes).clamp(0.0, total)
}

/// Bloat: free plus dead bytes beyond the fillfactor reserve, and its share of the
/// relation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bloat {
    pub bytes: f64,
    pub pct: f64,
}

pub fn bloat(total_bytes: f64, free_dead: f64, reserve: f64) -> Bloat {
    let bytes = (free_dead - reserve).max(0.0).min(total_bytes.max(0.0));
    let pct = if total_bytes > 0.0 {
        100.0 * bytes / total_bytes
    } else {
        0.0
    };
    Bloat { bytes, pct }
}

/// An integer storage parameter from `pg_class.reloptions` (`{fillfactor=70}`).
pub fn reloption_int(options: &[String], key: &str) -> Option<i64> {
    options.iter().find_map(|o| {
        let (k, v) = o.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key))
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// A small deterministic generator (splitmix64): the same relation gives the same
/// sample, so reports are repeatable and tests are stable.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n`.
    pub fn below_or_eq(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            return self.next_u64();
        }
        // the modulo bias is below 2^-40 for any relation size PostgreSQL allows
        self.next_u64() % (n + 1)
    }
}

/// `want` distinct block numbers drawn uniformly from `first..nblocks`, sorted so
/// the reads go forward; all of them when `want` covers the range (Floyd's algorithm).
pub fn sample_blocks(first: u32, nblocks: u32, want: u32, seed: u64) -> Vec<u32> {
    if nblocks <= first {
        return Vec::new();
    }
    let n = nblocks - first;
    if want >= n {
        return (first..nblocks).collect();
    }
    let mut rng = SplitMix::new(seed);
    let mut chosen = std::collections::BTreeSet::new();
    for j in (n - want)..n {
        let t = rng.below_or_eq(u64::from(j)) as u32;
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().map(|b| b + first).collect()
}

/// Could VACUUM remove the relation's dead tuples now? `held` and `removable` count
/// dead tuples seen on the pages read, classified by PostgreSQL's own
/// `HeapTupleSatisfiesVacuum` against the current horizon (RECENTLY_DEAD vs DEAD).
/// When no dead tuple was seen, fall back on the horizon itself: removable unless
/// something other than this session holds it back further than this session's
/// own snapshot does.
pub fn removable(
    dead_tuples: Option<i64>,
    held: u64,
    removable: u64,
    others_hold_older: bool,
) -> bool {
    if dead_tuples == Some(0) && held == 0 {
        return true;
    }
    if held > 0 {
        return false;
    }
    if removable > 0 {
        return true;
    }
    !others_hold_older
}

/// The figures VACUUM (VERBOSE) prints (PostgreSQL 15 and later), summed over the
/// table and its TOAST table, which VACUUM reports one after the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumReport {
    pub removed: Option<i64>,
    pub remain: Option<i64>,
    pub not_yet_removable: Option<i64>,
    pub cutoff_age_xids: Option<i64>,
    /// Lines that report dead tuples VACUUM could not remove (N > 0).
    pub lines_not_yet_removable: i64,
}

fn number_before(s: &str, marker: &str) -> Option<i64> {
    let at = s.find(marker)?;
    s[..at].split_whitespace().last()?.parse().ok()
}

/// Read the tuple counts and the removable cutoff out of VACUUM (VERBOSE) output,
/// which may arrive as one multi-line message or as separate lines.
pub fn parse_vacuum_verbose<S: AsRef<str>>(messages: &[S]) -> VacuumReport {
    let mut r = VacuumReport::default();
    for line in messages.iter().flat_map(|m| m.as_ref().lines()) {
        let line = line.trim();
        let add = |acc: &mut Option<i64>, n: Option<i64>| {
            if let Some(n) = n {
                *acc = Some(acc.unwrap_or(0) + n);
            }
        };
        if let Some(rest) = line.strip_prefix("tuples:") {
            add(&mut r.removed, number_before(rest, " removed"));
            add(&mut r.remain, number_before(rest, " remain"));
            let n = number_before(rest, " are dead but not yet removable");
            add(&mut r.not_yet_removable, n);
            if n.unwrap_or(0) > 0 {
                r.lines_not_yet_removable += 1;
            }
        } else if line.starts_with("removable cutoff:") {
            // the oldest cutoff of the tables vacuumed
            if let Some(age) = number_before(line, " XIDs old") {
                r.cutoff_age_xids = Some(r.cutoff_age_xids.map_or(age, |a| a.max(age)));
            }
        }
    }
    r
}

#[cfg(test)]
mod unit {
    use super::*;

    fn col(attlen: i16, align: u8, avg: Option<f64>, nf: f64) -> ColumnStats {
        ColumnStats {
            attlen,
            align,
            avg_width: avg,
            null_frac: nf,
            dropped: false,
        }
    }

    #[test]
    fn fixed_width_heap_tuple_matches_the_page_layout() {
        // (int4, int4): 24-byte header + 8 bytes data = 32, plus a line pointer
        let cols = [col(4, b'i', Some(4.0), 0.0), col(4, b'i', Some(4.0), 0.0)];
        assert_eq!(heap_tuple_bytes(&cols, 32.0), 36.0);
        // (int4, int8): the int8 is aligned to 8 -> 24 + 4 + 4 pad + 8 = 40
        let cols = [col(4, b'i', Some(4.0), 0.0), col(8, b'd', Some(8.0), 0.0)];
        assert_eq!(heap_tuple_bytes(&cols, 32.0), 44.0);
    }

    #[test]
    fn nulls_add_a_bitmap_only_past_eight_columns() {
        let few: Vec<_> = (0..8).map(|_| col(4, b'i', Some(4.0), 0.5)).collect();
        let many: Vec<_> = (0..9).map(|_| col(4, b'i', Some(4.0), 0.0)).collect();
        let mut many_nulls = many.clone();
        many_nulls[0].null_frac = 1.0;
        // up to 8 columns the bitmap fits in the header's padding byte
        let hdr_few = heap_tuple_bytes(&few, 0.0) - data_width(&few, 0.0, 0.0);
        assert!((hdr_few - (24.0 + 3.5 + 4.0)).abs() < 1e-9, "{hdr_few}");
        // the 9th column pushes the header to 32 bytes when a NULL is present
        let with = heap_tuple_bytes(&many_nulls, 0.0);
        let without = heap_tuple_bytes(&many, 0.0);
        assert!(with > without, "{with} vs {without}");
    }

    #[test]
    fn short_varlenas_are_not_aligned() {
        // int4 then a ~20-byte text: 24 + 4 + 20 = 48 (no pad before the text)
        let cols = [col(4, b'i', Some(4.0), 0.0), col(-1, b'i', Some(20.0), 0.0)];
        assert!((heap_tuple_bytes(&cols, 0.0) - (48.0 + 3.5 + 4.0)).abs() < 1e-9);
        // a 200-byte value keeps its 4-byte alignment: 24 + 1 (char) + 3 + 200
        let cols = [
            col(1, b'c', Some(1.0), 0.0),
            col(-1, b'i', Some(200.0), 0.0),
        ];
        assert!((heap_tuple_bytes(&cols, 0.0) - (228.0 + 3.5 + 4.0)).abs() < 1e-9);
    }

    #[test]
    fn dropped_columns_force_a_null_bitmap() {
        let mut cols: Vec<_> = (0..10).map(|_| col(4, b'i', Some(4.0), 0.0)).collect();
        let plain = heap_tuple_bytes(&cols, 0.0);
        cols[3].dropped = true;
        // one value fewer, but a 2-byte bitmap moves the header to 32 bytes
        assert!(heap_tuple_bytes(&cols, 0.0) > plain - 4.0);
        assert!(!widths_known(&[col(-1, b'i', None, 0.0)]));
        let mut gone = col(-1, b'i', None, 0.0);
        gone.dropped = true;
        assert!(widths_known(&[gone]));
    }

    #[test]
    fn index_tuple_of_an_int4_is_16_bytes() {
        let cols = [col(4, b'i', Some(4.0), 0.0)];
        assert_eq!(index_tuple_bytes(&cols, 0.0), 20.0);
        let cols = [col(8, b'd', Some(8.0), 0.0)];
        assert_eq!(index_tuple_bytes(&cols, 0.0), 20.0);
        let cols = [col(4, b'i', Some(4.0), 0.0), col(8, b'd', Some(8.0), 0.0)];
        assert_eq!(index_tuple_bytes(&cols, 0.0), 28.0);
    }

    #[test]
    fn toast_chunk_sizes_match_postgres() {
        assert_eq!(toast_max_chunk(8192.0), 1996.0);
        assert_eq!(toast_full_chunk_bytes(8192.0), 2036.0);
        // four full chunks fit a page
        assert!(4.0 * toast_full_chunk_bytes(8192.0) <= 8192.0 - PAGE_HEADER);
    }

    #[test]
    fn heap_free_dead_counts_what_is_not_live() {
        // 100 pages, 50 live 100-byte tuples per page: 100*(8192-28) - 5000*100
        let fd = heap_free_dead(100.0, 8192.0, 5000.0, 100.0, 0.0);
        assert_eq!(fd, 100.0 * (8192.0 - 28.0) - 500_000.0);
        // 10 unused line pointers a page (left by deletes) are neither free nor dead
        let fd2 = heap_free_dead(100.0, 8192.0, 5000.0, 100.0, 10.0);
        assert_eq!(fd - fd2, 100.0 * 40.0);
        // never negative, never more than the relation
        assert_eq!(heap_free_dead(1.0, 8192.0, 1e6, 100.0, 0.0), 0.0);
        assert_eq!(heap_free_dead(0.0, 8192.0, 0.0, 100.0, 0.0), 0.0);
    }

    #[test]
    fn fillfactor_reserve_is_not_bloat() {
        let pages = 1000.0;
        let total = pages * 8192.0;
        // a freshly loaded fillfactor-70 table: 30% free, all of it reserve
        let b = bloat(total, 0.31 * total, fillfactor_reserve(pages, 8192.0, 70.0));
        assert!((b.pct - 1.0).abs() < 1e-9, "{b:?}");
        let b = bloat(total, 0.10 * total, fillfactor_reserve(pages, 8192.0, 70.0));
        assert_eq!(b.bytes, 0.0);
        assert_eq!(bloat(0.0, 0.0, 0.0).pct, 0.0);
        assert_eq!(fillfactor_reserve(10.0, 8192.0, 100.0), 0.0);
    }

    #[test]
    fn btree_layout_is_mostly_leaves() {
        let l = btree_layout(10_001.0, 8192.0, 20.0, 0.0);
        assert!((l.leaf + l.internal - 10_000.0).abs() < 1e-6);
        assert!(l.internal > 20.0 && l.internal < 60.0, "{l:?}");
        assert_eq!(btree_layout(1.0, 8192.0, 20.0, 0.0).leaf, 0.0);
        // empty pages come out of the leaves, and count as free space
        let e = btree_layout(10_001.0, 8192.0, 20.0, 0.25);
        assert!((e.leaf + e.empty - l.leaf).abs() < 1e-6);
        assert!((e.empty / l.leaf - 0.25).abs() < 1e-9);
        let full = btree_free_dead(10_001.0, 8192.0, l, 0.0, 20.0, 20.0);
        let with_empty = btree_free_dead(10_001.0, 8192.0, e, 0.0, 20.0, 20.0);
        assert!(with_empty > full);
        // a fresh int4 index: 90% full leaves, so ~10% free space
        let tids = 1_000_000.0;
        let per_leaf = ((8192.0 - 40.0) * 0.9 / 20.0_f64).floor();
        let leaves = (tids / per_leaf).ceil();
        let pages = 1.0 + leaves * 1.004;
        let l = btree_layout(pages, 8192.0, 20.0, 0.0);
        let fd = btree_free_dead(pages, 8192.0, l, tids, 20.0, 20.0);
        let pct = 100.0 * fd / (pages * 8192.0);
        assert!(pct > 8.0 && pct < 11.0, "{pct}");
        let b = bloat(
            pages * 8192.0,
            fd,
            fillfactor_reserve(l.leaf, 8192.0, BTREE_DEFAULT_FILLFACTOR),
        );
        assert!(b.pct < 1.0, "{b:?}");
    }

    #[test]
    fn reloptions_parse() {
        let o = vec![
            "autovacuum_enabled=false".to_string(),
            "fillfactor=70".to_string(),
        ];
        assert_eq!(reloption_int(&o, "fillfactor"), Some(70));
        assert_eq!(reloption_int(&o, "toast_tuple_target"), None);
        assert_eq!(
            reloption_int(&["fillfactor=x".to_string()], "fillfactor"),
            None
        );
    }

    #[test]
    fn samples_are_distinct_sorted_repeatable_and_in_range() {
        let s = sample_blocks(1, 1000, 100, 42);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s.iter().all(|&b| (1..1000).contains(&b)));
        assert_eq!(s, sample_blocks(1, 1000, 100, 42));
        assert_ne!(s, sample_blocks(1, 1000, 100, 43));
        assert_eq!(sample_blocks(0, 5, 100, 1), vec![0, 1, 2, 3, 4]);
        assert!(sample_blocks(1, 1, 10, 1).is_empty());
        // roughly uniform: both halves get a fair share
        let s = sample_blocks(0, 100_000, 2000, 7);
        let low = s.iter().filter(|&&b| b < 50_000).count();
        assert!((900..1100).contains(&low), "{low}");
    }

    #[test]
    fn removable_rule() {
        assert!(removable(Some(0), 0, 0, true));
        assert!(!removable(Some(10), 3, 7, false));
        assert!(removable(Some(10), 0, 7, true));
        assert!(!removable(Some(10), 0, 0, true));
        assert!(removable(None, 0, 0, false));
        // a held tuple seen on a page outranks stale counters
        assert!(!removable(Some(0), 1, 0, false));
    }

    #[test]
    fn vacuum_verbose_is_read() {
        let msg = "finished vacuuming \"db.public.t\": index scans: 0\n\
                   pages: 0 removed, 443 remain, 443 scanned (100.00% of total)\n\
                   tuples: 0 removed, 100000 remain, 50000 are dead but not yet removable\n\
                   removable cutoff: 751, which was 3 XIDs old when operation ended\n";
        let r = parse_vacuum_verbose(&["vacuuming \"db.public.t\"", msg]);
        assert_eq!(r.removed, Some(0));
        assert_eq!(r.remain, Some(100_000));
        assert_eq!(r.not_yet_removable, Some(50_000));
        assert_eq!(r.cutoff_age_xids, Some(3));
        assert_eq!(r.lines_not_yet_removable, 1);
        // the table, then its TOAST table: summed
        let after = parse_vacuum_verbose(&[
            "tuples: 50000 removed, 50000 remain, 0 are dead but not yet removable",
            "tuples: 10 removed, 20 remain, 0 are dead but not yet removable",
        ]);
        assert_eq!(after.removed, Some(50_010));
        assert_eq!(after.remain, Some(50_020));
        assert_eq!(after.not_yet_removable, Some(0));
        assert_eq!(after.lines_not_yet_removable, 0);
        assert_eq!(parse_vacuum_verbose::<&str>(&[]), VacuumReport::default());
    }
}
