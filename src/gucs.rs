//! Every `capstone.*` setting: one static each, one `init()`, one getter each.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

static GAP_THRESHOLD: GucSetting<f64> = GucSetting::<f64>::new(10.0);
static WORKER_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(60_000);

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
}

pub fn gap_threshold() -> f64 {
    GAP_THRESHOLD.get()
}

pub fn worker_timeout_ms() -> i32 {
    WORKER_TIMEOUT_MS.get()
}
