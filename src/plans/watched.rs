//! SPI readers for the plan gate: the caller's enabled rows of
//! `capstone.watched_queries`, and a relation's estimated row count from pg_class.
//! Reads only; judging a query is [`super::gate`]'s job.

use crate::infra::error::{CapstoneError, Result};
use pgrx::prelude::*;

/// One enabled row of `capstone.watched_queries` with its budgets.
pub struct Watched {
    pub name: String,
    pub sql: String,
    pub max_q: f64,
    pub allowed: Vec<String>,
    pub min_rows: i64,
    pub max_ms: Option<f64>,
}

/// The caller's enabled watched queries, by name.
pub fn watched() -> Result<Vec<Watched>> {
    let threshold = crate::infra::gucs::gap_threshold();
    Spi::connect(|c| {
        let mut out = Vec::new();
        for r in c.select(
            "SELECT name, sql, max_q_error, seqscan_allowed, seqscan_min_rows, max_ms
               FROM capstone.watched_queries
              WHERE enabled AND owner = current_user ORDER BY name",
            None,
            &[],
        )? {
            out.push(Watched {
                name: r.get::<String>(1)?.unwrap_or_default(),
                sql: r.get::<String>(2)?.unwrap_or_default(),
                max_q: r.get::<f64>(3)?.unwrap_or(threshold),
                // the column allows NULL elements: they allow nothing
                allowed: r
                    .get::<Vec<Option<String>>>(4)?
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .collect(),
                min_rows: r.get::<i64>(5)?.unwrap_or(10000),
                max_ms: r.get::<f64>(6)?,
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(|e| {
        CapstoneError::PrerequisiteState(format!("cannot read capstone.watched_queries: {e}"))
            .into()
    })
}

/// Estimated row count of a relation named in a plan ("schema.rel" or "rel"); 0 when
/// it cannot be read.
pub fn reltuples(relation: &str) -> f64 {
    let (schema, rel) = match relation.split_once('.') {
        Some((s, r)) => (Some(s.to_string()), r.to_string()),
        None => (None, relation.to_string()),
    };
    crate::infra::spi::optional_row(
        "SELECT c.reltuples::float8 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relname = $2 AND ($1::text IS NULL OR n.nspname = $1)
          ORDER BY c.reltuples DESC LIMIT 1",
        &[schema.into(), rel.into()],
        |r| r.get::<f64>(1),
    )
    .ok()
    .flatten()
    .flatten()
    .unwrap_or(0.0)
}
