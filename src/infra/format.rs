//! How numbers read in text capstone writes (summaries, reasoning, report prose): one
//! home for percentages, sizes and rounding, so every gate prints them alike.

/// A fraction as a percentage: whole percents from 10% up, one decimal below
/// (`0.25` → `25%`, `0.034` → `3.4%`).
pub fn pct(fraction: f64) -> String {
    // an empty f64 sum is -0.0
    let x = fraction + 0.0;
    if x >= 0.1 {
        format!("{:.0}%", 100.0 * x)
    } else {
        format!("{:.1}%", 100.0 * x)
    }
}

/// A fraction as a percentage with one decimal (`0.25` → `25.0%`).
pub fn pct_1dp(fraction: f64) -> String {
    format!("{:.1}%", 100.0 * fraction + 0.0)
}

/// A size in bytes, in the largest binary unit below 1024 of it (`3145728` → `3 MB`).
pub fn bytes(b: i64) -> String {
    let mut v = b as f64;
    for u in ["bytes", "kB", "MB", "GB", "TB"] {
        if v.abs() < 1024.0 {
            return format!("{v:.0} {u}");
        }
        v /= 1024.0;
    }
    format!("{v:.0} PB")
}

/// A size as `pg_size_pretty` prints it (PostgreSQL's own function, so a result
/// column reads exactly like `\dt+` and `pg_size_pretty(...)` beside it).
pub fn size_pretty(b: i64) -> String {
    use pgrx::IntoDatum;
    // SAFETY: pg_size_pretty(bigint) is a strict builtin that returns text for every input
    unsafe { pgrx::direct_function_call::<String>(pgrx::pg_sys::pg_size_pretty, &[b.into_datum()]) }
        .unwrap_or_else(|| bytes(b))
}

/// A size in bytes as megabytes with one decimal (`1572864` → `1.5 MB`), where sizes
/// of one kind are compared side by side.
pub fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / (1024.0 * 1024.0))
}

/// `x` rounded to `digits` decimals, for numbers returned in result columns; NaN and
/// infinities pass through.
pub fn round(x: f64, digits: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let m = 10f64.powi(digits);
    let r = (x * m).round() / m;
    r + 0.0
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(pct(0.25), "25%");
        assert_eq!(pct(0.034), "3.4%");
        assert_eq!(pct(-0.0), "0.0%");
        assert_eq!(pct_1dp(0.25), "25.0%");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(3 * 1024 * 1024), "3 MB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5 GB");
        assert_eq!(mb(1_572_864), "1.5 MB");
    }

    #[test]
    fn rounding() {
        assert_eq!(round(8048.951219512195, 1), 8049.0);
        assert_eq!(round(25.336502003196415, 2), 25.34);
        assert_eq!(round(-0.0001, 2), 0.0);
        assert!(round(f64::NAN, 2).is_nan());
    }
}
