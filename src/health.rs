//! Identity and health of the installed extension.

use pgrx::prelude::*;

/// Major version the shared library was compiled against.
pub const fn compiled_major() -> i32 {
    (pg_sys::PG_VERSION_NUM / 10000) as i32
}

/// The extension version, and the server it runs on.
#[pg_extern(stable, parallel_safe)]
fn version() -> TableIterator<
    'static,
    (
        name!(extension, String),
        name!(server_version, String),
        name!(server_major, i32),
        name!(built_for_major, i32),
    ),
> {
    let server = Spi::get_one::<String>("SELECT current_setting('server_version')")
        .ok()
        .flatten()
        .unwrap_or_default();
    let num = Spi::get_one::<String>("SELECT current_setting('server_version_num')")
        .ok()
        .flatten()
        .and_then(|s| s.parse::<i32>().ok())
        .unwrap_or(0);
    TableIterator::once((
        env!("CARGO_PKG_VERSION").to_string(),
        server,
        num / 10000,
        compiled_major(),
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_reports_both_sides() {
        let (ext, major) =
            Spi::get_two::<String, i32>("SELECT extension, server_major FROM capstone.version()")
                .unwrap();
        assert_eq!(ext.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(major, Some(super::compiled_major()));
    }

    #[pg_test(error = "relation \"capstone.no_such_table\" does not exist")]
    fn missing_relation_keeps_its_sqlstate() {
        Spi::run("SELECT * FROM capstone.no_such_table").unwrap();
    }

    #[pg_test(error = "unknown mode \"bogus\"")]
    fn unknown_choice_is_a_coded_error() {
        crate::infra::error::check_choice("mode", "bogus", &["fast", "exact"]);
    }
}
