//! The estimated on-disk size of a hypothetical index, from the table's row and page
//! counts and the average width of the indexed columns. Pure arithmetic, no server:
//! the formulas follow hypopg 1.3 (the one Debian ships for PG15) so both tools agree.

/// PostgreSQL's block size (the Debian and PyPI builds use the default).
pub const BLOCK_SIZE: f64 = 8192.0;
const PAGE_HEADER: f64 = 24.0;
const BT_OPAQUE: f64 = 16.0;
const HASH_OPAQUE: f64 = 16.0;
const INDEX_TUPLE_HEADER: f64 = 8.0;
const ITEM_ID: f64 = 4.0;
const BTREE_DEFAULT_FILLFACTOR: i32 = 90;
const HASH_DEFAULT_FILLFACTOR: i32 = 75;
const BRIN_DEFAULT_PAGES_PER_RANGE: u32 = 128;
const BRIN_TUPLE: f64 = 8.0;
/// (BLCKSZ - MAXALIGN(page header) - MAXALIGN(BrinSpecialSpace)) / sizeof(ItemPointerData)
const REVMAP_PAGE_MAXITEMS: u32 = (8192 - 24 - 8) / 6;
/// Extra room btree pages lose to page splits, on top of the fillfactor.
const BTREE_EXTRA_BLOAT: f64 = 20.0;

/// Which size model an access method gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Btree,
    Hash,
    Brin {
        minmax: bool,
    },
    /// gist, gin, spgist: a btree-shaped guess (one entry per row); rough.
    Generic,
}

/// What the estimate needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeInput {
    pub model: Model,
    /// Rows the index holds (the table's rows, scaled by a partial index's selectivity).
    pub tuples: f64,
    /// The table's pages (BRIN sizes by page ranges, not rows).
    pub table_pages: u32,
    /// Sum of the indexed columns' average widths in bytes.
    pub entry_width: i32,
    /// Key plus INCLUDE columns.
    pub columns: usize,
    pub fillfactor: Option<i32>,
    pub pages_per_range: Option<i32>,
}

/// Estimated index pages (at least one).
#[must_use]
pub fn pages(input: &SizeInput) -> u32 {
    let tuples = if input.tuples.is_finite() && input.tuples > 0.0 {
        input.tuples
    } else {
        0.0
    };
    let est = match input.model {
        Model::Btree | Model::Generic => {
            btree_pages(tuples, input.entry_width, input.columns, input.fillfactor)
        }
        Model::Hash => hash_pages(tuples, input.fillfactor),
        Model::Brin { minmax } => brin_pages(
            input.table_pages,
            input.entry_width,
            minmax,
            input.pages_per_range,
        ),
    };
    est.max(1)
}

fn to_block_count(v: f64) -> u32 {
    if !v.is_finite() || v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        v as u32
    }
}

/// Bytes per btree entry as hypopg 1.3 (Debian's postgresql-15-hypopg) counts them: a
/// tuple header and a line pointer per column. For one int4 column that is 20 bytes, what
/// a real btree leaf entry takes (MAXALIGN(8 + 4) + 4); wider keys are overestimated.
fn btree_line(width: i32, columns: usize) -> f64 {
    let n = columns.max(1) as f64;
    let item_ids = (ITEM_ID * n / 8.0).ceil() * 8.0;
    f64::from(width.max(0)) + INDEX_TUPLE_HEADER * n + item_ids
}

fn btree_pages(tuples: f64, width: i32, columns: usize, fillfactor: Option<i32>) -> u32 {
    let line = btree_line(width, columns);
    let usable = BLOCK_SIZE - PAGE_HEADER - BT_OPAQUE;
    let ff = f64::from(fillfactor.unwrap_or(BTREE_DEFAULT_FILLFACTOR));
    let bloat = (200.0 - ff + BTREE_EXTRA_BLOAT) / 100.0;
    to_block_count(tuples * line * bloat / usable)
}

/// ceil(log2(n)) for n >= 1 (pg_ceil_log2_32).
fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// The hash AM's split-point phase for a bucket count (_hash_spareindex).
fn spare_index(num_bucket: u32) -> u32 {
    let group = ceil_log2(num_bucket);
    if group < 10 {
        return group;
    }
    let mut phases = 10 + ((group - 10) << 2);
    phases += ((num_bucket - 1) >> (group - 3)) & 3;
    phases
}

/// Buckets allocated up to a split-point phase (_hash_get_totalbuckets).
fn total_buckets(phase: u32) -> u32 {
    if phase < 10 {
        return 1 << phase;
    }
    let group = 10 + ((phase - 10) >> 2);
    let before = 1u32 << (group - 1);
    let within = ((phase - 10) & 3) + 1;
    before + (before >> 2) * within
}

fn hash_pages(tuples: f64, fillfactor: Option<i32>) -> u32 {
    let ff = match fillfactor {
        Some(f) if f > 0 => f,
        _ => HASH_DEFAULT_FILLFACTOR,
    };
    let item_width = 8 + 8 + 4;
    let ffactor = ((8192 * ff / 100) / item_width).max(10);
    let dbuckets = tuples / f64::from(ffactor);
    let buckets = if dbuckets <= 2.0 {
        2
    } else if dbuckets >= f64::from(0x4000_0000u32) {
        0x4000_0000
    } else {
        total_buckets(spare_index(to_block_count(dbuckets)))
    };
    let overflow = to_block_count(
        ((tuples - f64::from(buckets) * f64::from(ffactor)) / f64::from(ffactor) + 1.0).max(0.0),
    );
    let max_bitmap = (BLOCK_SIZE - PAGE_HEADER - HASH_OPAQUE) as u32;
    let lshift = 31 - max_bitmap.leading_zeros();
    let bitmap = (overflow / (1u32 << lshift)).max(1);
    buckets
        .saturating_add(overflow)
        .saturating_add(bitmap)
        .saturating_add(1)
}

fn brin_pages(table_pages: u32, width: i32, minmax: bool, pages_per_range: Option<i32>) -> u32 {
    let ppr = match pages_per_range {
        Some(p) if p > 0 => p as u32,
        _ => BRIN_DEFAULT_PAGES_PER_RANGE,
    };
    let ranges = table_pages / ppr + 1;
    let revmap = 1 + ranges / REVMAP_PAGE_MAXITEMS + 1;
    let w = f64::from(width.max(0));
    let per_range = if minmax {
        BRIN_TUPLE + 2.0 * w
    } else {
        BRIN_TUPLE + w + 2.0
    };
    let data = to_block_count(per_range * f64::from(ranges) / (BLOCK_SIZE - PAGE_HEADER)) + 1;
    revmap.saturating_add(data)
}

#[cfg(test)]
mod unit {
    use super::*;

    fn input(model: Model, tuples: f64, width: i32) -> SizeInput {
        SizeInput {
            model,
            tuples,
            table_pages: 0,
            entry_width: width,
            columns: 1,
            fillfactor: None,
            pages_per_range: None,
        }
    }

    #[test]
    fn btree_one_million_int4_rows() {
        // 1e6 × (4 + 8 + 8) × 1.3 / 8152 = 3189.4 → 3189 pages
        assert_eq!(pages(&input(Model::Btree, 1_000_000.0, 4)), 3189);
        assert_eq!(btree_line(4, 1), 20.0);
        // two columns: two headers, two line pointers rounded up to 8 bytes
        assert_eq!(btree_line(8, 2), 8.0 + 16.0 + 8.0);
        assert_eq!(btree_line(8, 3), 8.0 + 24.0 + 16.0);
    }

    #[test]
    fn btree_fillfactor_changes_bloat() {
        let mut i = input(Model::Btree, 1_000_000.0, 4);
        i.fillfactor = Some(100);
        // bloat (200 - 100 + 20) / 100 = 1.2
        assert_eq!(pages(&i), (1_000_000.0 * 20.0 * 1.2 / 8152.0) as u32);
    }

    #[test]
    fn empty_or_nonsense_tables_get_one_page() {
        assert_eq!(pages(&input(Model::Btree, 0.0, 4)), 1);
        assert_eq!(pages(&input(Model::Btree, f64::NAN, 4)), 1);
        assert_eq!(pages(&input(Model::Btree, -5.0, -3)), 1);
        assert_eq!(pages(&input(Model::Generic, f64::INFINITY, 8)), 1);
    }

    #[test]
    fn hash_split_points_match_the_hash_am() {
        assert_eq!(spare_index(1), 0);
        assert_eq!(spare_index(2), 1);
        assert_eq!(spare_index(1024), 13);
        assert_eq!(total_buckets(10), 640);
        assert_eq!(total_buckets(spare_index(1000)), 1024);
        assert_eq!(total_buckets(spare_index(3257)), 3584);
        // few rows: 2 buckets + 1 bitmap + meta
        assert_eq!(pages(&input(Model::Hash, 100.0, 4)), 4);
        // 1e6 rows, 307 per bucket: 3257 → 3584 buckets, no overflow page
        assert_eq!(pages(&input(Model::Hash, 1_000_000.0, 4)), 3584 + 1 + 1);
    }

    #[test]
    fn brin_grows_with_table_pages_not_rows() {
        let mut i = input(Model::Brin { minmax: true }, 1e9, 8);
        i.table_pages = 128_000;
        // 1001 ranges: root + revmap (1001 / 1360 + 1) = 2 pages, data 1001 × 24 / 8168 + 1 = 3
        assert_eq!(pages(&i), 5);
        i.pages_per_range = Some(16);
        assert!(pages(&i) > 5);
        let mut inclusion = i;
        inclusion.model = Model::Brin { minmax: false };
        assert!(pages(&inclusion) <= pages(&i));
    }

    #[test]
    fn huge_inputs_saturate_instead_of_overflowing() {
        assert_eq!(pages(&input(Model::Btree, 1e30, 1000)), u32::MAX);
        assert!(pages(&input(Model::Hash, 1e30, 4)) > 0x4000_0000);
    }
}
