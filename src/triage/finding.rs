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

/// The order an on-call engineer reads findings in: most severe first; findings of one
/// severity keep the failure modes' order.
pub fn most_severe_first(findings: &mut [Finding]) {
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
}

#[cfg(test)]
mod unit {
    use super::*;

    fn finding(mode: &str, severity: Severity) -> Finding {
        Finding {
            mode: mode.into(),
            severity,
            finding: String::new(),
            first_fix: String::new(),
            probe: String::new(),
            ms: 0.0,
            status: "ok".into(),
        }
    }

    #[test]
    fn most_severe_findings_come_first_in_mode_order() {
        let mut f = vec![
            finding("schema", Severity::Warn),
            finding("index", Severity::Ok),
            finding("statistics", Severity::Critical),
            finding("bloat", Severity::Info),
            finding("pooling", Severity::Warn),
        ];
        most_severe_first(&mut f);
        let modes: Vec<&str> = f.iter().map(|f| f.mode.as_str()).collect();
        assert_eq!(modes, ["statistics", "schema", "pooling", "bloat", "index"]);
    }

    #[test]
    fn severities_order() {
        assert!(Severity::Critical > Severity::Warn);
        assert!(Severity::Warn > Severity::Info);
        assert_eq!(Severity::parse("warn"), Severity::Warn);
        assert_eq!(Severity::parse("bogus"), Severity::Ok);
    }
}
