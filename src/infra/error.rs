//! One error type for every user-facing failure. Each case maps to a SQLSTATE and
//! carries a detail and a hint, so nothing a user does surfaces as XX000. Gate code
//! returns [`Result`] and the SQL surface raises it ([`OrRaise::or_raise`]); notices and
//! warnings go through [`notice`], [`notice_hint`] and [`warning`], never a hand-built report.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as C;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapstoneError {
    /// 22023: an argument is out of range or not one of the allowed values.
    #[error("{0}")]
    InvalidParameter(String),
    /// 22004: a required argument was NULL.
    #[error("{0} must not be NULL")]
    NullValue(String),
    /// 42601: SQL text that does not parse, or is not exactly one statement.
    #[error("{0}")]
    Syntax(String),
    /// 42P01: no such relation.
    #[error("{0}")]
    UndefinedTable(String),
    /// 42703: no such column.
    #[error("{0}")]
    UndefinedColumn(String),
    /// 3F000: no such schema.
    #[error("{0}")]
    UndefinedSchema(String),
    /// 42704: no such object (job, evidence row, ...).
    #[error("{0}")]
    UndefinedObject(String),
    /// 42710: the object already exists.
    #[error("{0}")]
    DuplicateObject(String),
    /// 42809: the relation exists but is the wrong kind.
    #[error("{0}")]
    WrongObjectType(String),
    /// 42501: the caller may not do this.
    #[error("{0}")]
    InsufficientPrivilege(String),
    /// 55P03: a lock could not be had within the timeout.
    #[error("{0}")]
    LockNotAvailable(String),
    /// 55000: the database is not in the state this call needs.
    #[error("{0}")]
    PrerequisiteState(String),
    /// 53000: out of workers, slots or similar.
    #[error("{0}")]
    InsufficientResources(String),
    /// 0A000: not supported here (server version, missing extension).
    #[error("{0}")]
    NotSupported(String),
    /// 57014: a bounded wait ran out.
    #[error("{0}")]
    Timeout(String),
    /// 22P02: a text argument that cannot be read as what it should be (a pasted plan).
    #[error("{0}")]
    InvalidText(String),
    /// P0001: a gate ran and its verdict is "failed" (plan_gate's assert form).
    #[error("{0}")]
    GateFailed(String),
}

/// An error with the detail and hint it is raised with: what gate code returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: CapstoneError,
    pub detail: String,
    pub hint: String,
}

/// What gate code returns; the SQL surface raises the error with [`OrRaise::or_raise`].
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl From<CapstoneError> for Failure {
    fn from(error: CapstoneError) -> Self {
        Failure {
            error,
            detail: String::new(),
            hint: String::new(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<Failure> for ErrorReport {
    fn from(f: Failure) -> Self {
        let mut report = ErrorReport::new(f.error.sqlstate(), f.error.to_string(), "capstone");
        if !f.detail.is_empty() {
            report = report.set_detail(f.detail);
        }
        if !f.hint.is_empty() {
            report = report.set_hint(f.hint);
        }
        report
    }
}

impl Failure {
    /// Raise at ERROR. Never returns.
    pub fn raise(self) -> ! {
        ErrorReport::from(self).report(PgLogLevel::ERROR);
        // an ERROR-level report unwinds to PostgreSQL's error handler and never returns here
        std::process::abort()
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

/// Raise an error result at the SQL surface.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<Failure>> OrRaise<T> for std::result::Result<T, E> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().raise(),
        }
    }
}

/// A NOTICE from capstone.
pub fn notice(message: impl Into<String>) {
    notice_hint(message, "");
}

/// A NOTICE with a hint.
pub fn notice_hint(message: impl Into<String>, hint: impl Into<String>) {
    let hint = hint.into();
    let mut report = ErrorReport::new(C::ERRCODE_SUCCESSFUL_COMPLETION, message.into(), "capstone");
    if !hint.is_empty() {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::NOTICE);
}

/// A WARNING (01000) from capstone.
pub fn warning(message: impl Into<String>) {
    warning_hint(message, "");
}

/// A WARNING (01000) with a hint.
pub fn warning_hint(message: impl Into<String>, hint: impl Into<String>) {
    let hint = hint.into();
    let mut report = ErrorReport::new(C::ERRCODE_WARNING, message.into(), "capstone");
    if !hint.is_empty() {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::WARNING);
}

impl CapstoneError {
    pub fn sqlstate(&self) -> C {
        match self {
            CapstoneError::InvalidParameter(_) => C::ERRCODE_INVALID_PARAMETER_VALUE,
            CapstoneError::NullValue(_) => C::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            CapstoneError::Syntax(_) => C::ERRCODE_SYNTAX_ERROR,
            CapstoneError::UndefinedTable(_) => C::ERRCODE_UNDEFINED_TABLE,
            CapstoneError::UndefinedColumn(_) => C::ERRCODE_UNDEFINED_COLUMN,
            CapstoneError::UndefinedSchema(_) => C::ERRCODE_INVALID_SCHEMA_NAME,
            CapstoneError::UndefinedObject(_) => C::ERRCODE_UNDEFINED_OBJECT,
            CapstoneError::DuplicateObject(_) => C::ERRCODE_DUPLICATE_OBJECT,
            CapstoneError::WrongObjectType(_) => C::ERRCODE_WRONG_OBJECT_TYPE,
            CapstoneError::InsufficientPrivilege(_) => C::ERRCODE_INSUFFICIENT_PRIVILEGE,
            CapstoneError::LockNotAvailable(_) => C::ERRCODE_LOCK_NOT_AVAILABLE,
            CapstoneError::PrerequisiteState(_) => C::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            CapstoneError::InsufficientResources(_) => C::ERRCODE_INSUFFICIENT_RESOURCES,
            CapstoneError::NotSupported(_) => C::ERRCODE_FEATURE_NOT_SUPPORTED,
            CapstoneError::Timeout(_) => C::ERRCODE_QUERY_CANCELED,
            CapstoneError::GateFailed(_) => C::ERRCODE_RAISE_EXCEPTION,
            CapstoneError::InvalidText(_) => C::ERRCODE_INVALID_TEXT_REPRESENTATION,
        }
    }

    /// This error with a detail and a hint, to return.
    pub fn with(self, detail: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure::from(self).detail(detail).hint(hint)
    }

    /// This error with a hint, to return.
    pub fn with_hint(self, hint: impl Into<String>) -> Failure {
        Failure::from(self).hint(hint)
    }

    /// Attach a detail and a hint, then raise. Never returns.
    pub fn raise_with(self, detail: impl Into<String>, hint: impl Into<String>) -> ! {
        self.with(detail, hint).raise()
    }

    /// Raise with a hint only.
    pub fn raise_hint(self, hint: impl Into<String>) -> ! {
        self.raise_with("", hint)
    }

    /// Raise as is.
    pub fn raise(self) -> ! {
        self.raise_with("", "")
    }
}

/// Unwrap a required argument or raise 22004 naming it.
pub fn required<T>(value: Option<T>, name: &str) -> T {
    match value {
        Some(v) => v,
        None => CapstoneError::NullValue(name.to_string())
            .raise_hint(format!("pass a value for {name}")),
    }
}

/// Check that `value` lies in `[lo, hi]`, or raise 22023 with the range.
pub fn check_range<T: PartialOrd + std::fmt::Display>(name: &str, value: T, lo: T, hi: T) -> T {
    if value < lo || value > hi {
        CapstoneError::InvalidParameter(format!(
            "{name} must be between {lo} and {hi} (got {value})"
        ))
        .raise();
    }
    value
}

/// Raise 22023 when `value` is not one of `allowed`; the hint lists them.
pub fn check_choice<'a>(name: &str, value: &str, allowed: &[&'a str]) -> &'a str {
    match allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value.trim()))
    {
        Some(a) => a,
        None => CapstoneError::InvalidParameter(format!("unknown {name} \"{value}\""))
            .raise_hint(format!("valid values: {}", allowed.join(", "))),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn each_case_has_its_sqlstate() {
        assert_eq!(
            CapstoneError::InvalidParameter("x".into()).sqlstate(),
            C::ERRCODE_INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            CapstoneError::Syntax("x".into()).sqlstate(),
            C::ERRCODE_SYNTAX_ERROR
        );
        assert_eq!(
            CapstoneError::UndefinedTable("x".into()).sqlstate(),
            C::ERRCODE_UNDEFINED_TABLE
        );
        assert_eq!(
            CapstoneError::InsufficientPrivilege("x".into()).sqlstate(),
            C::ERRCODE_INSUFFICIENT_PRIVILEGE
        );
        assert_eq!(
            CapstoneError::NullValue("scale".into()).to_string(),
            "scale must not be NULL"
        );
    }
}
