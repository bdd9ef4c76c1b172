//! What the shard advisor knows about a schema: tables with their rows, columns, keys
//! and `pg_stats`, foreign keys, and the workload. Plain data filled by `catalog`;
//! no pgrx types and no logic beyond reading `n_distinct`.

use std::collections::HashMap;

/// Value statistics of one column of one table, from `pg_stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnStats {
    /// Fraction of rows that are NULL.
    pub null_frac: f64,
    /// Distinct non-null values, as an absolute count (see [`absolute_n_distinct`]).
    pub n_distinct: f64,
    /// Most common values with their frequency as a fraction of all rows.
    pub mcv: Vec<(String, f64)>,
}

/// One table of the schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub name: String,
    /// Estimated rows (`reltuples`, summed over partitions for a partitioned table).
    pub rows: f64,
    pub bytes: i64,
    /// Columns in order, with their SQL type.
    pub columns: Vec<(String, String)>,
    /// Primary key columns in key order (empty without a primary key).
    pub pk: Vec<String>,
    /// Other unique constraints' columns.
    pub uniques: Vec<Vec<String>>,
    /// `pg_stats` per column name; a column without statistics is absent.
    pub stats: HashMap<String, ColumnStats>,
    /// Tuples read vs written since the statistics reset (`pg_stat_user_tables`).
    pub tuples_read: f64,
    pub tuples_written: f64,
}

impl Table {
    pub fn type_of(&self, col: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == col)
            .map(|(_, t)| t.as_str())
    }
}

/// A foreign key `child (pairs.0, ...) REFERENCES parent (pairs.1, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub child: String,
    pub parent: String,
    pub pairs: Vec<(String, String)>,
}

/// One `pg_stat_statements` entry (top-level statements only).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub query: String,
    pub calls: f64,
    pub total_ms: f64,
}

/// Everything the advisor knows about a schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaModel {
    pub schema: String,
    pub tables: Vec<Table>,
    pub fks: Vec<ForeignKey>,
    /// `None` when pg_stat_statements is not available in this database.
    pub workload: Option<Vec<Statement>>,
}

/// `pg_stats.n_distinct` as an absolute count: negative values are a fraction of the rows.
pub fn absolute_n_distinct(n_distinct: f64, rows: f64) -> f64 {
    if !n_distinct.is_finite() {
        0.0
    } else if n_distinct < 0.0 {
        (-n_distinct * rows.max(0.0)).round()
    } else {
        n_distinct
    }
}
