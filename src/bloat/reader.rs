//! Reading a relation's pages through the buffer manager, the way pgstattuple
//! does, but only the pages asked for: a sample, the pages the visibility map does
//! not vouch for, or all of them. Each page is copied under a share lock and read
//! by the pure code in `page.rs`; heap tuples are classified with PostgreSQL's own
//! `HeapTupleSatisfiesVacuum` against the horizon VACUUM would use now.

use super::page::{self, BtreePages, HeapPages, LinePointer, Verdict};
use pgrx::pg_sys;
use pgrx::prelude::*;

pub const BLCKSZ: usize = pg_sys::BLCKSZ as usize;

/// A relation opened with AccessShareLock, closed (and unlocked) on drop.
pub struct Opened {
    rel: pg_sys::Relation,
    oid: pg_sys::Oid,
}

impl Opened {
    /// Open without waiting: a relation someone holds an exclusive lock on (VACUUM
    /// FULL, a rewrite, DROP) is skipped rather than waited for, so a report never
    /// queues behind DDL. None also when the relation no longer exists.
    pub fn try_open(oid: pg_sys::Oid) -> Option<Opened> {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        unsafe {
            if !pg_sys::ConditionalLockRelationOid(oid, lock) {
                return None;
            }
            let rel = pg_sys::try_relation_open(oid, pg_sys::NoLock as pg_sys::LOCKMODE);
            if rel.is_null() {
                pg_sys::UnlockRelationOid(oid, lock);
                return None;
            }
            // another session's temporary table lives in its local buffers, out of our reach
            let other_temp = (*(*rel).rd_rel).relpersistence == pg_sys::RELPERSISTENCE_TEMP as i8
                && !(*rel).rd_islocaltemp;
            let opened = Opened { rel, oid };
            if other_temp {
                return None;
            }
            Some(opened)
        }
    }

    /// Blocks in the main fork now.
    pub fn nblocks(&self) -> u32 {
        unsafe {
            pg_sys::RelationGetNumberOfBlocksInFork(self.rel, pg_sys::ForkNumber::MAIN_FORKNUM)
        }
    }

    /// The oldest transaction whose deletions VACUUM must still keep for this
    /// relation: backends of this database, replication slots, prepared
    /// transactions and standby feedback, as PostgreSQL itself computes it.
    pub fn horizon(&self) -> pg_sys::TransactionId {
        unsafe { pg_sys::GetOldestNonRemovableTransactionId(self.rel) }
    }

    /// Does anything other than this session hold the horizon further back than
    /// this session's own snapshot does?
    pub fn others_hold_older(&self) -> bool {
        unsafe {
            let mine = (*pg_sys::MyProc).xmin;
            let horizon = self.horizon();
            pg_sys::TransactionIdIsNormal(mine)
                && pg_sys::TransactionIdIsNormal(horizon)
                && pg_sys::TransactionIdPrecedes(horizon, mine)
        }
    }

    /// Run `f` on block `blkno` under a share lock: the page pointer and its buffer.
    fn with_page<R>(
        &self,
        blkno: u32,
        strategy: pg_sys::BufferAccessStrategy,
        f: impl FnOnce(*mut u8, pg_sys::Buffer) -> R,
    ) -> R {
        check_for_interrupts!();
        unsafe {
            let buf = pg_sys::ReadBufferExtended(
                self.rel,
                pg_sys::ForkNumber::MAIN_FORKNUM,
                blkno,
                pg_sys::ReadBufferMode::RBM_NORMAL,
                strategy,
            );
            pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
            let page = pg_sys::BufferGetPage(buf) as *mut u8;
            let r = f(page, buf);
            pg_sys::UnlockReleaseBuffer(buf);
            r
        }
    }

    /// Tally heap pages `blocks`, classifying every tuple against `horizon`. On a
    /// page the visibility map marks all-visible every tuple is live to everyone, so
    /// the per-tuple check is skipped there (pgstattuple_approx trusts the map the same way).
    pub fn read_heap(
        &self,
        blocks: impl IntoIterator<Item = u32>,
        horizon: pg_sys::TransactionId,
        strategy: pg_sys::BufferAccessStrategy,
    ) -> HeapPages {
        let mut total = HeapPages::default();
        let mut copy = vec![0u8; BLCKSZ];
        let mut vmbuf: pg_sys::Buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        for blkno in blocks {
            let visible = unsafe {
                pg_sys::visibilitymap_get_status(self.rel, blkno, &mut vmbuf) as u32
                    & pg_sys::VISIBILITYMAP_ALL_VISIBLE
                    != 0
            };
            let s = self.with_page(blkno, strategy, |page, buf| unsafe {
                std::ptr::copy_nonoverlapping(page, copy.as_mut_ptr(), BLCKSZ);
                page::scan_heap_page(&copy, |off, lp| {
                    if visible {
                        Verdict::Live
                    } else {
                        self.verdict(page, buf, blkno, off, lp, horizon)
                    }
                })
            });
            total.add(&s);
        }
        if vmbuf != pg_sys::InvalidBuffer as pg_sys::Buffer {
            unsafe { pg_sys::ReleaseBuffer(vmbuf) };
        }
        total
    }

    /// VACUUM's view of one tuple: live, dead but still visible to some snapshot,
    /// or removable now.
    unsafe fn verdict(
        &self,
        page: *mut u8,
        buf: pg_sys::Buffer,
        blkno: u32,
        off: u16,
        lp: &LinePointer,
        horizon: pg_sys::TransactionId,
    ) -> Verdict {
        if usize::from(lp.off) + usize::from(lp.len) > BLCKSZ || lp.len == 0 {
            return Verdict::Live;
        }
        let mut tup: pg_sys::HeapTupleData = unsafe { std::mem::zeroed() };
        tup.t_data = unsafe { page.add(usize::from(lp.off)) } as pg_sys::HeapTupleHeader;
        tup.t_len = u32::from(lp.len);
        tup.t_tableOid = self.oid;
        tup.t_self.ip_blkid.bi_hi = (blkno >> 16) as u16;
        tup.t_self.ip_blkid.bi_lo = (blkno & 0xFFFF) as u16;
        tup.t_self.ip_posid = off;
        match unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut tup, horizon, buf) } {
            pg_sys::HTSV_Result::HEAPTUPLE_DEAD => Verdict::Removable,
            pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD => Verdict::Held,
            _ => Verdict::Live,
        }
    }

    /// Tally btree pages `blocks`.
    pub fn read_btree(
        &self,
        blocks: impl IntoIterator<Item = u32>,
        strategy: pg_sys::BufferAccessStrategy,
    ) -> BtreePages {
        let mut total = BtreePages::default();
        let mut copy = vec![0u8; BLCKSZ];
        for blkno in blocks {
            let s = self.with_page(blkno, strategy, |page, _| unsafe {
                std::ptr::copy_nonoverlapping(page, copy.as_mut_ptr(), BLCKSZ);
                page::scan_btree_page(&copy)
            });
            total.add(&s);
        }
        total
    }

    /// Which of `blocks` the visibility map marks all-visible (no dead tuples there).
    pub fn all_visible(&self, blocks: &[u32]) -> Vec<bool> {
        let mut vmbuf: pg_sys::Buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        let out = blocks
            .iter()
            .map(|&b| unsafe {
                pg_sys::visibilitymap_get_status(self.rel, b, &mut vmbuf) as u32
                    & pg_sys::VISIBILITYMAP_ALL_VISIBLE
                    != 0
            })
            .collect();
        if vmbuf != pg_sys::InvalidBuffer as pg_sys::Buffer {
            unsafe { pg_sys::ReleaseBuffer(vmbuf) };
        }
        out
    }

    /// Free space the free space map records for a block (as of the last VACUUM).
    pub fn recorded_free(&self, blkno: u32) -> u64 {
        unsafe { pg_sys::GetRecordedFreeSpace(self.rel, blkno) as u64 }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        unsafe { pg_sys::relation_close(self.rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
    }
}

/// A bulk-read ring for full passes, so a report does not flush shared buffers.
pub struct Strategy(pub pg_sys::BufferAccessStrategy);

impl Strategy {
    pub fn bulk() -> Strategy {
        Strategy(unsafe {
            pg_sys::GetAccessStrategy(pg_sys::BufferAccessStrategyType::BAS_BULKREAD)
        })
    }
}

impl Drop for Strategy {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { pg_sys::FreeAccessStrategy(self.0) };
        }
    }
}
