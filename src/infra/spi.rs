//! SPI shapes every gate uses: a query that returns at most one row, and an SPI failure
//! turned into capstone's error naming what was being read.

use crate::infra::error::CapstoneError;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{self, SpiTupleTable};

/// Run `sql` with `args` and read its first row with `read`; `None` when it returns none.
pub fn optional_row<T>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    read: impl FnOnce(&SpiTupleTable<'_>) -> Result<T, spi::Error>,
) -> Result<Option<T>, spi::Error> {
    Spi::connect(|c| {
        let t = c.select(sql, Some(1), args)?;
        if t.is_empty() {
            return Ok(None);
        }
        read(&t.first()).map(Some)
    })
}

/// An SPI failure while reading `what`, as 55000 naming it.
pub fn read_failed(what: &str) -> impl Fn(spi::Error) -> CapstoneError + '_ {
    move |e| CapstoneError::PrerequisiteState(format!("could not read {what}: {e}"))
}
