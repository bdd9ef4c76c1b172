//! The IndexOptInfo fields whose shape differs between PostgreSQL majors: the cost
//! estimator's pointer type (untyped on 15) and nullsnotdistinct (18 only). Nothing
//! else belongs here; the common filling is inject.rs.

use pgrx::pg_sys;

/// Copy the access method's cost estimator into the planner's index struct.
///
/// # Safety
/// `info` and `routine` must be valid.
pub unsafe fn set_costestimate(
    info: *mut pg_sys::IndexOptInfo,
    routine: *const pg_sys::IndexAmRoutine,
) {
    #[cfg(feature = "pg15")]
    unsafe {
        // PG15 declares the field as `void (*)()`; the pointer is the same function
        (*info).amcostestimate = std::mem::transmute::<
            pg_sys::amcostestimate_function,
            Option<unsafe extern "C-unwind" fn()>,
        >((*routine).amcostestimate);
    }
    #[cfg(not(feature = "pg15"))]
    unsafe {
        (*info).amcostestimate = (*routine).amcostestimate;
    }
}

/// NULLS NOT DISTINCT reaches the planner only from PG18 on.
///
/// # Safety
/// `info` must be valid.
pub unsafe fn set_nulls_not_distinct(info: *mut pg_sys::IndexOptInfo, value: bool) {
    #[cfg(feature = "pg18")]
    unsafe {
        (*info).nullsnotdistinct = value;
    }
    #[cfg(not(feature = "pg18"))]
    {
        let _ = (info, value);
    }
}
