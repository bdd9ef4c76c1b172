//! A `regclass` argument that does not open the relation.
//!
//! pgrx's `PgRelation` opens (and locks) the relation while converting the
//! argument, so a dropped relation's OID becomes an internal error (XX000). This
//! type only carries the OID; each function looks the relation up itself and
//! reports a missing one as 42P01.

use crate::infra::error::CapstoneError;
use pgrx::prelude::*;
use pgrx::{FromDatum, IntoDatum};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegClass(pub pg_sys::Oid);

impl FromDatum for RegClass {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            None
        } else {
            unsafe { pg_sys::Oid::from_datum(datum, false).map(RegClass) }
        }
    }
}

impl IntoDatum for RegClass {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.0))
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::REGCLASSOID
    }
}

pgrx::impl_sql_translatable!(RegClass, "regclass");

/// What a relation is, looked up without locking it.
pub struct RelInfo {
    pub oid: pg_sys::Oid,
    pub qualified: String,
    pub relkind: String,
}

/// Look up a relation by OID, or raise 42P01 when it no longer exists.
pub fn lookup(rel: RegClass) -> RelInfo {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            Some(1),
            &[rel.0.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
        )))
    });
    match row {
        Ok(Some((qualified, relkind))) => RelInfo {
            oid: rel.0,
            qualified,
            relkind,
        },
        _ => CapstoneError::UndefinedTable(format!(
            "relation with OID {} does not exist",
            rel.0.to_u32()
        ))
        .raise_hint(
            "it was probably dropped; pass the table's current name, e.g. 'shop.orders'::regclass",
        ),
    }
}

unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for RegClass {
    unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        // only called for non-NULL arguments (functions take Option<RegClass>)
        unsafe {
            RegClass(
                arg.unbox_arg_using_from_datum::<pg_sys::Oid>()
                    .unwrap_or(pg_sys::InvalidOid),
            )
        }
    }

    unsafe fn unbox_nullable_arg(
        arg: pgrx::callconv::Arg<'_, 'fcx>,
    ) -> pgrx::nullable::Nullable<Self> {
        unsafe {
            arg.unbox_arg_using_from_datum::<pg_sys::Oid>()
                .map(RegClass)
                .into()
        }
    }
}
