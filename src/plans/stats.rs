//! Small statistics over run times (the median of several EXPLAIN runs).

/// Median of the non-NaN values (sorts the slice); None when there are none.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    // total_cmp puts -NaN first and +NaN last, so the numbers are contiguous.
    let start = values.iter().position(|v| !v.is_nan())?;
    let end = values.iter().rposition(|v| !v.is_nan())? + 1;
    let nums = values.get(start..end)?;
    let mid = nums.len() / 2;
    if nums.len() % 2 == 1 {
        nums.get(mid).copied()
    } else {
        let lo = *nums.get(mid.checked_sub(1)?)?;
        let hi = *nums.get(mid)?;
        // Halve first so two huge values cannot overflow to infinity.
        Some(lo / 2.0 + hi / 2.0)
    }
}

#[cfg(test)]
mod unit {
    use super::median;

    #[test]
    fn median_helper() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [f64::NAN, 2.0, -f64::NAN, 4.0]), Some(3.0));
        assert_eq!(median(&mut [f64::NAN]), None);
        assert_eq!(median(&mut [f64::MAX, f64::MAX]), Some(f64::MAX));
        assert_eq!(
            median(&mut [f64::NEG_INFINITY, 1.0, f64::INFINITY]),
            Some(1.0)
        );
    }
}
