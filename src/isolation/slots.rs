//! The shared-memory slots the demo's sessions are driven through: one per session, a
//! statement in, an answer out, a generation so a reused slot is never mistaken for an
//! old one. Only layout, copying and latches; what a statement does is elsewhere.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::sync::atomic::{AtomicBool, Ordering};

/// Sessions that may exist at once, cluster-wide (a demo uses two).
pub const SLOTS: usize = 8;
/// Longest statement a session accepts, in bytes.
pub const COMMAND_BYTES: usize = 8192;
/// An answer's text is cut at this many bytes (at a character boundary).
pub const RESULT_BYTES: usize = 1024;
pub const MESSAGE_BYTES: usize = 1024;
pub const ROLE_BYTES: usize = 64;

// slot states
pub const FREE: u8 = 0;
pub const STARTING: u8 = 1;
pub const IDLE: u8 = 2;
pub const PENDING: u8 = 3;
pub const RUNNING: u8 = 4;
pub const DONE: u8 = 5;
pub const EXITED: u8 = 6;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Slot {
    pub state: u8,
    /// the coordinator asks the worker to leave
    pub stop: bool,
    pub failed: bool,
    pub sqlstate: [u8; 5],
    pub coordinator: i32,
    pub worker: i32,
    pub generation: u64,
    /// the last statement sent and the last one answered
    pub sent: u64,
    pub answered: u64,
    pub command_len: u32,
    pub result_len: u32,
    pub message_len: u32,
    pub role_len: u32,
    pub command: [u8; COMMAND_BYTES],
    pub result: [u8; RESULT_BYTES],
    pub message: [u8; MESSAGE_BYTES],
    pub role: [u8; ROLE_BYTES],
}

pub const EMPTY_SLOT: Slot = Slot {
    state: FREE,
    stop: false,
    failed: false,
    sqlstate: [0; 5],
    coordinator: 0,
    worker: 0,
    generation: 0,
    sent: 0,
    answered: 0,
    command_len: 0,
    result_len: 0,
    message_len: 0,
    role_len: 0,
    command: [0; COMMAND_BYTES],
    result: [0; RESULT_BYTES],
    message: [0; MESSAGE_BYTES],
    role: [0; ROLE_BYTES],
};

#[derive(Clone, Copy)]
pub struct SessionSlots {
    pub generation: u64,
    pub slots: [Slot; SLOTS],
}

impl Default for SessionSlots {
    fn default() -> Self {
        SessionSlots {
            generation: 0,
            slots: [EMPTY_SLOT; SLOTS],
        }
    }
}

// SAFETY: plain bytes and integers, no pointers
unsafe impl PGRXSharedMemory for SessionSlots {}

pub static SLOTS_SHMEM: PgLwLock<SessionSlots> =
    unsafe { PgLwLock::new(c"capstone_demo_sessions") };
/// Set in the postmaster when the region is requested; inherited by every backend.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Request the region. Only while shared_preload_libraries is being processed.
// pgrx's macro tests features pg13/pg14, which this crate does not declare
#[allow(unexpected_cfgs)]
pub fn init_shmem() {
    pg_shmem_init!(SLOTS_SHMEM);
    REGISTERED.store(true, Ordering::SeqCst);
}

/// Whether this server has the region (capstone was preloaded).
pub fn available() -> bool {
    REGISTERED.load(Ordering::SeqCst)
}

/// Copy `s` into `buf`, cut at a character boundary; the length written.
pub fn put(buf: &mut [u8], s: &str) -> u32 {
    let mut n = s.len().min(buf.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    n as u32
}

pub fn get(buf: &[u8], len: u32) -> String {
    String::from_utf8_lossy(&buf[..(len as usize).min(buf.len())]).into_owned()
}

pub fn alive(pid: i32) -> bool {
    pid != 0 && unsafe { !pg_sys::BackendPidGetProc(pid).is_null() }
}

pub fn wake(pid: i32) {
    if pid == 0 {
        return;
    }
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&raw mut (*proc_).procLatch);
        }
    }
}

/// Wait on our latch at most `ms`, then optionally serve interrupts (cancel, terminate).
pub fn nap(ms: i64, interrupts: bool) {
    crate::infra::worker::wait_latch(ms);
    if interrupts {
        check_for_interrupts!();
    }
}

/// A free slot for a new session of this backend, with its generation. A slot whose
/// coordinator and worker are both gone (a crashed or terminated demo) is taken back.
pub fn reserve() -> Option<(usize, u64)> {
    let mut g = SLOTS_SHMEM.exclusive();
    let me = unsafe { pg_sys::MyProcPid };
    let i = (0..SLOTS).find(|&i| {
        let x = &g.slots[i];
        x.state == FREE || (!alive(x.coordinator) && !alive(x.worker))
    })?;
    g.generation += 1;
    let generation = g.generation;
    let x = &mut g.slots[i];
    *x = EMPTY_SLOT;
    x.state = STARTING;
    x.coordinator = me;
    x.generation = generation;
    Some((i, generation))
}

pub fn release(slot: usize, generation: u64) {
    let mut g = SLOTS_SHMEM.exclusive();
    if g.slots[slot].generation == generation {
        g.slots[slot].state = FREE;
        g.slots[slot].worker = 0;
        g.slots[slot].coordinator = 0;
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn put_cuts_at_a_character_boundary() {
        let mut buf = [0u8; 4];
        assert_eq!(put(&mut buf, "ab"), 2);
        assert_eq!(get(&buf, 2), "ab");
        // 'é' is two bytes: "aaaé" does not fit in 4, so it is cut before the é
        assert_eq!(put(&mut buf, "aaé"), 4);
        assert_eq!(put(&mut buf, "aaaé"), 3);
        assert_eq!(get(&buf, 3), "aaa");
    }
}
