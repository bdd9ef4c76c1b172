//! The evidence store (`capstone.evidence`): every gate records what it measured.

use crate::infra::error::CapstoneError;
use pgrx::prelude::*;
use pgrx::JsonB;

/// The gate a capture belongs to: the values `capstone.evidence.gate` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Health,
    Schema,
    Index,
    Statistics,
    Plans,
    Isolation,
    Pooling,
    Migration,
    Sharding,
    Bloat,
    Triage,
    Reliability,
}

impl Gate {
    /// The name stored in `capstone.evidence.gate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Health => "health",
            Gate::Schema => "schema",
            Gate::Index => "index",
            Gate::Statistics => "statistics",
            Gate::Plans => "plans",
            Gate::Isolation => "isolation",
            Gate::Pooling => "pooling",
            Gate::Migration => "migration",
            Gate::Sharding => "sharding",
            Gate::Bloat => "bloat",
            Gate::Triage => "triage",
            Gate::Reliability => "reliability",
        }
    }
}

/// Store one capture and return its id. The row names the caller as its author;
/// only capstone writes evidence (PUBLIC may read its own rows, never write them).
pub fn store(
    gate: Gate,
    label: Option<&str>,
    query: Option<&str>,
    settings: serde_json::Value,
    payload: serde_json::Value,
) -> i64 {
    let by = crate::infra::owner::caller();
    crate::infra::owner::write(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO capstone.evidence (gate, label, query, settings, payload, captured_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                gate.as_str().into(),
                label.into(),
                query.into(),
                JsonB(settings).into(),
                JsonB(payload).into(),
                by.into(),
            ],
        )
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        CapstoneError::PrerequisiteState("could not store evidence".into())
            .raise_hint("check that capstone.evidence exists (ALTER EXTENSION capstone UPDATE)")
    })
}

/// One stored capture.
pub struct Captured {
    pub gate: String,
    pub label: Option<String>,
    pub query: Option<String>,
    pub payload: serde_json::Value,
    pub captured_by: String,
}

/// Load a capture by id, or raise 42704 naming the id. A role sees only its own
/// captures (row-level security); a role that bypasses it (a superuser) is told whose
/// capture it is reading when it is not its own.
pub fn load(id: i64) -> Captured {
    let (row, payload) = load_row(id, &[]);
    // read as text: pgrx's jsonb decoding stops at 128 levels
    let payload = match payload.into_iter().next().flatten() {
        None => serde_json::Value::Null,
        Some(t) => crate::infra::json::parse_deep(&t).unwrap_or_else(|e| {
            CapstoneError::PrerequisiteState(format!("evidence row {id} cannot be read: {e}"))
                .raise_hint("the payload nests deeper than capstone reads; look at it with SELECT payload FROM capstone.evidence")
        }),
    };
    Captured { payload, ..row }
}

/// Load a capture as [`load`] does, but instead of decoding the whole payload, only the
/// values at `paths` (jsonb paths such as `{plan}` or `{imported,stored_as}`), each as
/// text: a JSON string as its contents, anything else as its JSON text, a missing key
/// as None. A plan read this way is parsed once, straight into the plan tree.
pub fn load_parts(id: i64, paths: &[&str]) -> (Captured, Vec<Option<String>>) {
    load_row(id, paths)
}

/// The row, and its payload as text (no paths) or the texts at `paths`.
fn load_row(id: i64, paths: &[&str]) -> (Captured, Vec<Option<String>>) {
    let cols = if paths.is_empty() {
        "payload::text".to_string()
    } else {
        (0..paths.len())
            .map(|i| format!("payload #>> ${}::text[]", i + 2))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT gate, label, query, captured_by::text, {cols} FROM capstone.evidence WHERE id = $1"
    );
    let mut args: Vec<pgrx::datum::DatumWithOid> = vec![id.into()];
    args.extend(paths.iter().map(|p| (*p).into()));
    let row = Spi::connect(|c| {
        let t = c.select(&sql, Some(1), &args)?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        let n = paths.len().max(1);
        let mut parts = Vec::with_capacity(n);
        for i in 0..n {
            parts.push(r.get::<String>(5 + i)?);
        }
        Ok(Some((
            Captured {
                gate: r.get::<String>(1)?.unwrap_or_default(),
                label: r.get::<String>(2)?,
                query: r.get::<String>(3)?,
                payload: serde_json::Value::Null,
                captured_by: r.get::<String>(4)?.unwrap_or_default(),
            },
            parts,
        )))
    });
    match row {
        Ok(Some((c, parts))) => {
            if c.captured_by != crate::infra::owner::caller() {
                notice!(
                    "evidence row {id} was captured by role {}, not by you",
                    c.captured_by
                );
            }
            (c, parts)
        }
        _ => CapstoneError::UndefinedObject(format!("evidence row {id} does not exist")).raise_hint(
            "list captures with SELECT id, gate, label, captured_at FROM capstone.evidence ORDER BY id DESC",
        ),
    }
}
