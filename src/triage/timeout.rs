//! PostgreSQL's timeout machinery (utils/timeout.h), so each triage probe runs under
//! its own statement timeout even inside a function. STATEMENT_TIMEOUT is the fourth
//! member of `TimeoutId` on every supported major (15-18). Arming and disarming only.

const STATEMENT_TIMEOUT: std::ffi::c_int = 3;
extern "C-unwind" {
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
}

/// Arm a statement timeout for the statements that follow, even inside a
/// function (where `SET statement_timeout` would only apply to the next
/// top-level statement).
pub fn arm(ms: i32) {
    unsafe { enable_timeout_after(STATEMENT_TIMEOUT, ms.max(1)) }
}

/// Disarm, keeping the indicator: a timeout that fired after the probe's last
/// interrupt check is still reported as a statement timeout by the next one.
pub fn disarm() {
    unsafe { disable_timeout(STATEMENT_TIMEOUT, true) }
}

/// Disarm, then restore the session's own statement_timeout if it had one.
pub fn restore() {
    unsafe {
        disable_timeout(STATEMENT_TIMEOUT, false);
        let own = pgrx::pg_sys::StatementTimeout;
        if own > 0 {
            enable_timeout_after(STATEMENT_TIMEOUT, own);
        }
    }
}
