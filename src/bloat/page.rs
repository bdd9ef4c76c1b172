//! Reading heap and btree pages from their bytes: line pointers, free space,
//! posting lists. Pure Rust over a copy of the page, so `#[test]`s build pages by
//! hand; the one thing that needs the server (is a heap tuple dead, and may
//! VACUUM remove it) comes in as a closure.

use super::estimate::{align_up, ITEM_ID, MAXALIGN, PAGE_HEADER};

/// `lp_flags` values.
pub const LP_UNUSED: u8 = 0;
pub const LP_NORMAL: u8 = 1;
pub const LP_REDIRECT: u8 = 2;
pub const LP_DEAD: u8 = 3;

/// `btpo_flags` bits.
pub const BTP_LEAF: u16 = 1 << 0;
pub const BTP_DELETED: u16 = 1 << 2;
pub const BTP_META: u16 = 1 << 3;
pub const BTP_HALF_DEAD: u16 = 1 << 4;

/// `INDEX_ALT_TID_MASK` in `t_info`, and `BT_IS_POSTING` / `BT_OFFSET_MASK` in the TID's offset.
const INDEX_ALT_TID_MASK: u16 = 0x2000;
const BT_IS_POSTING: u16 = 0x2000;
const BT_OFFSET_MASK: u16 = 0x0FFF;

fn u16_at(page: &[u8], at: usize) -> u16 {
    page.get(at..at + 2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .unwrap_or(0)
}

fn u32_at(page: &[u8], at: usize) -> u32 {
    page.get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// One `ItemIdData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePointer {
    pub off: u16,
    pub flags: u8,
    pub len: u16,
}

impl LinePointer {
    /// Pack as the C bitfield `lp_off:15, lp_flags:2, lp_len:15` does.
    pub fn encode(&self) -> u32 {
        u32::from(self.off & 0x7FFF)
            | (u32::from(self.flags & 3) << 15)
            | (u32::from(self.len & 0x7FFF) << 17)
    }

    pub fn decode(v: u32) -> LinePointer {
        LinePointer {
            off: (v & 0x7FFF) as u16,
            flags: ((v >> 15) & 3) as u8,
            len: (v >> 17) as u16,
        }
    }
}

/// The page header fields we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub lower: u16,
    pub upper: u16,
    pub special: u16,
}

pub fn header(page: &[u8]) -> PageHeader {
    PageHeader {
        lower: u16_at(page, 12),
        upper: u16_at(page, 14),
        special: u16_at(page, 16),
    }
}

/// An all-zero page (`PageIsNew`): extended but never initialized.
pub fn is_new(page: &[u8]) -> bool {
    header(page).upper == 0
}

/// Line pointers of an initialized page, in offset-number order (1-based).
pub fn line_pointers(page: &[u8]) -> Vec<LinePointer> {
    let h = header(page);
    let lower = usize::from(h.lower).min(page.len());
    if lower < PAGE_HEADER as usize {
        return Vec::new();
    }
    (PAGE_HEADER as usize..lower)
        .step_by(ITEM_ID as usize)
        .map(|at| LinePointer::decode(u32_at(page, at)))
        .collect()
}

/// `PageGetExactFreeSpace`: the hole between the line pointers and the tuples.
pub fn exact_free(page: &[u8]) -> u32 {
    let h = header(page);
    u32::from(h.upper.saturating_sub(h.lower))
}

/// `PageGetFreeSpace`: the hole less the line pointer a new item would need.
pub fn index_free(page: &[u8]) -> u32 {
    exact_free(page).saturating_sub(ITEM_ID as u32)
}

/// `PageGetHeapFreeSpace`: as `PageGetFreeSpace`, but nothing when the page has
/// run out of line pointers.
pub fn heap_free(page: &[u8], lps: &[LinePointer], max_heap_tuples: usize) -> u32 {
    let space = index_free(page);
    if space > 0 && lps.len() >= max_heap_tuples && !lps.iter().any(|l| l.flags == LP_UNUSED) {
        return 0;
    }
    space
}

/// `MaxHeapTuplesPerPage` for a block size.
pub fn max_heap_tuples(blcksz: usize) -> usize {
    (blcksz - PAGE_HEADER as usize) / (align_up(23.0, MAXALIGN) as usize + ITEM_ID as usize)
}

/// How VACUUM would see one heap tuple now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Live, or being inserted or deleted by a transaction still running.
    Live,
    /// Dead, but some snapshot may still see it: VACUUM must keep it (RECENTLY_DEAD).
    Held,
    /// Dead to everyone: VACUUM would remove it now (DEAD).
    Removable,
}

/// What a set of heap pages holds, in pgstattuple's terms plus VACUUM's verdicts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HeapPages {
    pub pages: u64,
    /// `PageGetHeapFreeSpace` summed.
    pub free: u64,
    pub live: u64,
    /// Sum of `t_len` of live tuples (pgstattuple's tuple_len).
    pub live_len: u64,
    /// What the live tuples occupy: MAXALIGN'd length plus the line pointer.
    pub live_stored: u64,
    pub dead: u64,
    /// Sum of `t_len` of dead tuples (pgstattuple's dead_tuple_len).
    pub dead_len: u64,
    /// Dead tuples (and pruned LP_DEAD stubs) VACUUM could remove now.
    pub dead_removable: u64,
    /// Dead tuples an xmin horizon still protects.
    pub dead_held: u64,
    /// Line pointers without a tuple (unused, redirect, pruned): 4 bytes each that
    /// pgstattuple counts neither as free nor as dead.
    pub stub_lps: u64,
}

impl HeapPages {
    pub fn add(&mut self, o: &HeapPages) {
        self.pages += o.pages;
        self.free += o.free;
        self.live += o.live;
        self.live_len += o.live_len;
        self.live_stored += o.live_stored;
        self.dead += o.dead;
        self.dead_len += o.dead_len;
        self.dead_removable += o.dead_removable;
        self.dead_held += o.dead_held;
        self.stub_lps += o.stub_lps;
    }

    /// Average line pointers per page that hold no tuple.
    pub fn stubs_per_page(&self) -> f64 {
        if self.pages == 0 {
            0.0
        } else {
            self.stub_lps as f64 / self.pages as f64
        }
    }

    /// Average stored bytes of a live tuple, when enough were seen to trust it.
    pub fn tuple_bytes(&self, min_tuples: u64) -> Option<f64> {
        (self.live >= min_tuples.max(1)).then(|| self.live_stored as f64 / self.live as f64)
    }
}

/// Tally one heap page. `verdict` is asked about each normal tuple by offset
/// number (1-based) and line pointer.
pub fn scan_heap_page(
    page: &[u8],
    mut verdict: impl FnMut(u16, &LinePointer) -> Verdict,
) -> HeapPages {
    let mut s = HeapPages {
        pages: 1,
        ..HeapPages::default()
    };
    if is_new(page) {
        // never initialized: usable as a whole, though pgstattuple counts it as 0 free
        s.free = (page.len() as f64 - PAGE_HEADER - ITEM_ID) as u64;
        return s;
    }
    let lps = line_pointers(page);
    s.free = u64::from(heap_free(page, &lps, max_heap_tuples(page.len())));
    for (i, lp) in lps.iter().enumerate() {
        match lp.flags {
            LP_NORMAL => {
                let len = u64::from(lp.len);
                match verdict((i + 1) as u16, lp) {
                    Verdict::Live => {
                        s.live += 1;
                        s.live_len += len;
                        s.live_stored += align_up(len as f64, MAXALIGN) as u64 + ITEM_ID as u64;
                    }
                    v => {
                        s.dead += 1;
                        s.dead_len += len;
                        if v == Verdict::Held {
                            s.dead_held += 1;
                        } else {
                            s.dead_removable += 1;
                        }
                    }
                }
            }
            // pruned already; only VACUUM's second pass is left to free the line pointer
            LP_DEAD => {
                s.dead_removable += 1;
                s.stub_lps += 1;
            }
            _ => s.stub_lps += 1,
        }
    }
    s
}

/// What a set of btree pages holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BtreePages {
    pub pages: u64,
    pub meta: u64,
    pub leaf: u64,
    pub internal: u64,
    /// Deleted, half-dead or never-initialized pages: free as a whole.
    pub empty: u64,
    /// `PageGetFreeSpace` of leaves plus whole empty pages, as pgstattuple counts it.
    pub free: u64,
    /// Live leaf items (plain tuples and posting lists).
    pub items: u64,
    /// Heap TIDs those items point to (a posting list holds many).
    pub tids: u64,
    /// What the live items occupy, line pointers included.
    pub item_bytes: u64,
    pub dead_items: u64,
    pub dead_bytes: u64,
    /// High keys of non-rightmost leaves, line pointers included.
    pub high_keys: u64,
    pub high_key_bytes: u64,
}

impl BtreePages {
    pub fn add(&mut self, o: &BtreePages) {
        self.pages += o.pages;
        self.meta += o.meta;
        self.leaf += o.leaf;
        self.internal += o.internal;
        self.empty += o.empty;
        self.free += o.free;
        self.items += o.items;
        self.tids += o.tids;
        self.item_bytes += o.item_bytes;
        self.dead_items += o.dead_items;
        self.dead_bytes += o.dead_bytes;
        self.high_keys += o.high_keys;
        self.high_key_bytes += o.high_key_bytes;
    }

    /// Stored bytes per heap TID on the leaves: deduplication shows up here.
    pub fn tid_bytes(&self, min_tids: u64) -> Option<f64> {
        (self.tids >= min_tids.max(1)).then(|| self.item_bytes as f64 / self.tids as f64)
    }

    /// Average high key (pivot tuple) size.
    pub fn pivot_bytes(&self) -> Option<f64> {
        (self.high_keys > 0).then(|| self.high_key_bytes as f64 / self.high_keys as f64)
    }
}

/// Heap TIDs in a leaf item: a posting list's count, else one.
pub fn item_tids(page: &[u8], lp: &LinePointer) -> u64 {
    let at = usize::from(lp.off);
    let t_info = u16_at(page, at + 6);
    if t_info & INDEX_ALT_TID_MASK != 0 {
        let posid = u16_at(page, at + 4);
        if posid & BT_IS_POSTING != 0 {
            return u64::from(posid & BT_OFFSET_MASK);
        }
    }
    1
}

/// Tally one btree page.
pub fn scan_btree_page(page: &[u8]) -> BtreePages {
    let mut s = BtreePages {
        pages: 1,
        ..BtreePages::default()
    };
    if is_new(page) {
        s.empty = 1;
        s.free = page.len() as u64;
        return s;
    }
    let h = header(page);
    let special = usize::from(h.special);
    if page.len().saturating_sub(special) != super::estimate::BTREE_SPECIAL as usize {
        // not a btree page we understand: count it as overhead
        s.internal = 1;
        return s;
    }
    let next = u32_at(page, special + 4);
    let flags = u16_at(page, special + 12);
    if flags & BTP_META != 0 {
        s.meta = 1;
    } else if flags & (BTP_DELETED | BTP_HALF_DEAD) != 0 {
        s.empty = 1;
        s.free = page.len() as u64;
    } else if flags & BTP_LEAF != 0 {
        s.leaf = 1;
        s.free = u64::from(index_free(page));
        let lps = line_pointers(page);
        let rightmost = next == 0;
        for (i, lp) in lps.iter().enumerate() {
            if i == 0 && !rightmost {
                s.high_keys += 1;
                s.high_key_bytes += u64::from(lp.len) + ITEM_ID as u64;
            } else if lp.flags == LP_DEAD {
                s.dead_items += 1;
                s.dead_bytes += u64::from(lp.len);
            } else if lp.flags == LP_NORMAL {
                s.items += 1;
                s.tids += item_tids(page, lp);
                s.item_bytes += u64::from(lp.len) + ITEM_ID as u64;
            }
        }
    } else {
        s.internal = 1;
    }
    s
}

#[cfg(test)]
pub mod testing {
    //! Build pages by hand, laid out the way bufpage.c does.
    use super::*;

    pub const BLCKSZ: usize = 8192;

    pub struct PageBuilder {
        pub page: Vec<u8>,
        lower: usize,
        upper: usize,
    }

    impl PageBuilder {
        pub fn new(special_size: usize) -> PageBuilder {
            let mut p = PageBuilder {
                page: vec![0; BLCKSZ],
                lower: PAGE_HEADER as usize,
                upper: BLCKSZ - special_size,
            };
            p.sync();
            p.put_u16(16, (BLCKSZ - special_size) as u16);
            p
        }

        fn put_u16(&mut self, at: usize, v: u16) {
            self.page[at..at + 2].copy_from_slice(&v.to_ne_bytes());
        }

        fn put_u32(&mut self, at: usize, v: u32) {
            self.page[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }

        fn sync(&mut self) {
            let (l, u) = (self.lower as u16, self.upper as u16);
            self.put_u16(12, l);
            self.put_u16(14, u);
        }

        /// Add an item of `len` bytes (placed MAXALIGN'd from the top) and return its offset.
        pub fn add(&mut self, len: usize, flags: u8) -> usize {
            let off = if flags == LP_NORMAL {
                self.upper -= align_up(len as f64, MAXALIGN) as usize;
                self.upper
            } else {
                0
            };
            let lp = LinePointer {
                off: off as u16,
                flags,
                len: if flags == LP_NORMAL { len as u16 } else { 0 },
            };
            let at = self.lower;
            self.put_u32(at, lp.encode());
            self.lower += ITEM_ID as usize;
            self.sync();
            off
        }

        /// A btree leaf item holding `ntids` heap TIDs (a posting list when > 1).
        pub fn add_index_item(&mut self, len: usize, ntids: u16) {
            let off = self.add(len, LP_NORMAL);
            let mut t_info = len as u16;
            if ntids > 1 {
                t_info |= INDEX_ALT_TID_MASK;
                self.put_u16(off + 4, BT_IS_POSTING | ntids);
            }
            self.put_u16(off + 6, t_info);
        }

        pub fn btree_opaque(&mut self, next: u32, flags: u16) {
            let special = BLCKSZ - 16;
            self.put_u32(special + 4, next);
            self.put_u16(special + 12, flags);
        }
    }
}

#[cfg(test)]
mod unit {
    use super::testing::*;
    use super::*;

    #[test]
    fn line_pointers_round_trip() {
        for lp in [
            LinePointer {
                off: 8000,
                flags: LP_NORMAL,
                len: 36,
            },
            LinePointer {
                off: 0,
                flags: LP_DEAD,
                len: 0,
            },
            LinePointer {
                off: 0x7FFF,
                flags: LP_REDIRECT,
                len: 0x7FFF,
            },
        ] {
            assert_eq!(LinePointer::decode(lp.encode()), lp);
        }
    }

    #[test]
    fn heap_page_tally() {
        let mut p = PageBuilder::new(0);
        for _ in 0..10 {
            p.add(36, LP_NORMAL);
        }
        p.add(0, LP_DEAD);
        p.add(0, LP_UNUSED);
        // offsets 1-6 live, 7-8 held, 9-10 removable
        let s = scan_heap_page(&p.page, |off, _| match off {
            1..=6 => Verdict::Live,
            7 | 8 => Verdict::Held,
            _ => Verdict::Removable,
        });
        assert_eq!(s.live, 6);
        assert_eq!(s.live_len, 6 * 36);
        assert_eq!(s.live_stored, 6 * (40 + 4));
        assert_eq!(s.dead, 4);
        assert_eq!(s.dead_len, 4 * 36);
        assert_eq!(s.dead_held, 2);
        assert_eq!(s.dead_removable, 3);
        assert_eq!(s.stub_lps, 2);
        assert_eq!(s.stubs_per_page(), 2.0);
        // 8192 - 24 - 12*4 line pointers - 10*40 tuples, less one line pointer
        assert_eq!(s.free, (8192 - 24 - 48 - 400 - 4) as u64);
        assert_eq!(s.tuple_bytes(1), Some(44.0));
        assert_eq!(s.tuple_bytes(7), None);
    }

    #[test]
    fn a_new_heap_page_is_free() {
        let s = scan_heap_page(&vec![0u8; BLCKSZ], |_, _| Verdict::Live);
        assert_eq!(s.pages, 1);
        assert_eq!(s.free, 8192 - 28);
        assert_eq!(s.live, 0);
    }

    #[test]
    fn full_line_pointer_array_leaves_no_heap_free_space() {
        let mut p = PageBuilder::new(0);
        let max = max_heap_tuples(BLCKSZ);
        assert_eq!(max, 291);
        for _ in 0..max {
            p.add(0, LP_DEAD);
        }
        let lps = line_pointers(&p.page);
        assert!(index_free(&p.page) > 0);
        assert_eq!(heap_free(&p.page, &lps, max), 0);
    }

    #[test]
    fn btree_leaf_with_posting_lists() {
        let mut p = PageBuilder::new(16);
        p.btree_opaque(7, BTP_LEAF);
        p.add_index_item(16, 1); // high key
        p.add_index_item(808, 130); // posting list of 130 TIDs
        p.add_index_item(16, 1);
        let dead = p.add(16, LP_NORMAL);
        let _ = dead;
        // mark the last one LP_DEAD by rewriting its line pointer
        let at = 24 + 3 * 4;
        let mut lp =
            LinePointer::decode(u32::from_ne_bytes(p.page[at..at + 4].try_into().unwrap()));
        lp.flags = LP_DEAD;
        p.page[at..at + 4].copy_from_slice(&lp.encode().to_ne_bytes());
        let s = scan_btree_page(&p.page);
        assert_eq!((s.leaf, s.internal, s.meta, s.empty), (1, 0, 0, 0));
        assert_eq!(s.high_keys, 1);
        assert_eq!(s.high_key_bytes, 20);
        assert_eq!(s.items, 2);
        assert_eq!(s.tids, 131);
        assert_eq!(s.item_bytes, 812 + 20);
        assert_eq!(s.dead_items, 1);
        assert_eq!(s.dead_bytes, 16);
        assert_eq!(
            s.free,
            (8192 - 16 - 24 - 4 * 4 - (16 + 808 + 16 + 16) - 4) as u64
        );
        // bytes per heap row: deduplication makes it ~6 instead of 20
        let per_tid = s.tid_bytes(1).unwrap();
        assert!(per_tid < 7.0, "{per_tid}");
        assert_eq!(s.pivot_bytes(), Some(20.0));
    }

    #[test]
    fn rightmost_leaf_has_no_high_key_and_other_pages_are_classified() {
        let mut p = PageBuilder::new(16);
        p.btree_opaque(0, BTP_LEAF);
        p.add_index_item(16, 1);
        let s = scan_btree_page(&p.page);
        assert_eq!((s.high_keys, s.items, s.tids), (0, 1, 1));

        let mut p = PageBuilder::new(16);
        p.btree_opaque(3, 0);
        assert_eq!(scan_btree_page(&p.page).internal, 1);

        let mut p = PageBuilder::new(16);
        p.btree_opaque(0, BTP_META);
        assert_eq!(scan_btree_page(&p.page).meta, 1);

        let mut p = PageBuilder::new(16);
        p.btree_opaque(3, BTP_LEAF | BTP_DELETED);
        let s = scan_btree_page(&p.page);
        assert_eq!((s.empty, s.free), (1, 8192));

        let s = scan_btree_page(&vec![0u8; BLCKSZ]);
        assert_eq!((s.empty, s.free), (1, 8192));

        // a heap page handed to the btree reader is not misread as a leaf
        let p = PageBuilder::new(0);
        assert_eq!(scan_btree_page(&p.page).leaf, 0);
    }
}
