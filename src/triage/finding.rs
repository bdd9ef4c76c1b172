//! What triage says about one failure mode: a [`Finding`] and its [`Severity`]. Pure
//! data; producing findings is `run`'s job.

/// Severity of a finding, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Info,
    Warn,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Severity {
        match s {
            "critical" => Severity::Critical,
            "warn" => Severity::Warn,
            "info" => Severity::Info,
            _ => Severity::Ok,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// One triage row.
pub struct Finding {
    pub mode: String,
    pub severity: Severity,
    pub finding: String,
    pub first_fix: String,
    pub probe: String,
    pub ms: f64,
    pub status: String,
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn severities_order() {
        assert!(Severity::Critical > Severity::Warn);
        assert!(Severity::Warn > Severity::Info);
        assert_eq!(Severity::parse("warn"), Severity::Warn);
        assert_eq!(Severity::parse("bogus"), Severity::Ok);
    }
}
