//! capstone: evidence for every gate of a production PostgreSQL schema, from psql.
//!
//! Each gate lives in its own module. Pure logic (plan parsing, statistics math)
//! is kept free of pgrx types so plain `#[test]`s cover it without a server; the
//! `#[pg_extern]` functions are a thin layer that turns SQL arguments into those
//! types and back.

use pgrx::prelude::*;

// Layering (docs/architecture.md): `infra` is the ground floor and imports no gate; the
// gates (bloat … sharding) import only `infra`, never each other; `report` and `triage`
// sit on top and read the gates' results.
pub mod infra;

pub mod advice;
pub mod bloat;
pub mod health;
pub mod isolation;
pub mod lab;
pub mod migration;
pub mod plans;
pub mod pooling;
pub mod sharding;

pub mod report;
pub mod triage;

::pgrx::pg_module_magic!(name, version);

// Tables, sequences and other hand-written objects come first, grants last.
extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    infra::gucs::init();
    advice::hooks::install();
    // the launcher (which resumes backfill jobs after a restart) and the anomaly demo's
    // session slots in shared memory need preloading
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        migration::worker::register_launcher();
        isolation::session::init_shmem();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn library_is_preloaded() {
        // pg_test::postgresql_conf_options() puts capstone in shared_preload_libraries,
        // the configuration every later gate (launcher, workers) relies on.
        let spl = Spi::get_one::<String>("SHOW shared_preload_libraries")
            .expect("SHOW works")
            .unwrap_or_default();
        assert!(spl.split(',').any(|s| s.trim() == "capstone"), "got {spl}");
        let threshold = Spi::get_one::<String>("SHOW capstone.gap_threshold")
            .expect("SHOW works")
            .unwrap_or_default();
        assert_eq!(threshold, "10");
    }
}

/// Used by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'capstone,pg_stat_statements'",
            "max_worker_processes = 32",
            "max_prepared_transactions = 10",
        ]
    }
}
