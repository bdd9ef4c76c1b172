//! Every `capstone.*` setting: one static each, one `init()`, one getter each. The prefix is
//! reserved once they are defined, so a misspelt `capstone.*` setting is refused (42704)
//! instead of silently becoming a placeholder nobody reads.

use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};

static GAP_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(10.0);
static WORKER_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);
static BACKFILL_MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(4);
static BACKFILL_NAPTIME_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static LAUNCHER_DATABASE: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"postgres"));
static BLOAT_SAMPLE_PAGES: GucSetting<i32> = GucSetting::<i32>::new(100);

pub fn init() {
    GucRegistry::define_float_guc(
        c"capstone.gap_threshold",
        c"q-error at or above which estimate_gap flags a plan node",
        c"q-error is max(estimated/actual, actual/estimated) per plan node.",
        &GAP_THRESHOLD,
        1.0,
        1.0e12,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"capstone.worker_timeout",
        c"How long a caller waits for a capstone background worker to finish",
        c"Applies to workers a call starts and waits for, such as the smoke test and demos.",
        &WORKER_TIMEOUT_MS,
        100,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"capstone.backfill_max_workers",
        c"How many backfill jobs may run at once in a database",
        c"Jobs over the limit wait in state queued; the launcher starts them as slots free up.",
        &BACKFILL_MAX_WORKERS,
        1,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"capstone.backfill_naptime",
        c"How often the launcher looks for backfill jobs to (re)start",
        c"After a server restart the launcher resumes unfinished jobs from their last committed batch.",
        &BACKFILL_NAPTIME_MS,
        1000,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"capstone.launcher_database",
        c"Database the capstone launcher connects to in order to list databases",
        c"Any database that always exists; the launcher only reads pg_database from it.",
        &LAUNCHER_DATABASE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"capstone.bloat_sample_pages",
        c"Pages bloat_report reads per relation in its default (fast) mode",
        c"A uniform random sample measures tuple widths, btree deduplication and TOAST chunk packing; 0 gives the catalog-only estimate.",
        &BLOAT_SAMPLE_PAGES,
        0,
        100_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: called from _PG_init with a static NUL-terminated prefix; PostgreSQL copies it
    unsafe { pg_sys::MarkGUCPrefixReserved(c"capstone".as_ptr()) };
}

pub fn gap_threshold() -> f64 {
    GAP_THRESHOLD.get()
}

pub fn worker_timeout_ms() -> i32 {
    WORKER_TIMEOUT_MS.get()
}

pub fn backfill_max_workers() -> i32 {
    BACKFILL_MAX_WORKERS.get()
}

pub fn backfill_naptime_ms() -> i32 {
    BACKFILL_NAPTIME_MS.get()
}

pub fn launcher_database() -> String {
    LAUNCHER_DATABASE
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".to_string())
}

pub fn bloat_sample_pages() -> u32 {
    BLOAT_SAMPLE_PAGES.get().max(0) as u32
}
