//! Fixes besides the isolation level for the catalogue's anomalies: row locks on the
//! reads (FOR UPDATE / FOR SHARE), an atomic read-modify-write, an advisory lock every
//! transaction takes first, and a constraint that turns the conflict into an error. Each
//! runs at READ COMMITTED, where the anomalies happen, and the verdict is measured like
//! any other run. Pure: names, what applies where, and the script edits.

use super::catalogue::Case;
use super::driver::Step;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    ForUpdate,
    ForShare,
    AtomicUpdate,
    AdvisoryLock,
    Constraint,
}

pub const ALL: &[Fix] = &[
    Fix::ForUpdate,
    Fix::ForShare,
    Fix::AtomicUpdate,
    Fix::AdvisoryLock,
    Fix::Constraint,
];

impl Fix {
    /// The mode name anomaly_demo takes.
    pub fn name(self) -> &'static str {
        match self {
            Fix::ForUpdate => "for_update",
            Fix::ForShare => "for_share",
            Fix::AtomicUpdate => "atomic_update",
            Fix::AdvisoryLock => "advisory_lock",
            Fix::Constraint => "constraint",
        }
    }

    /// The spelling the lab's cases use for the same fix.
    fn alias(self) -> &'static str {
        match self {
            Fix::ForUpdate => "select for update",
            Fix::ForShare => "select for share",
            Fix::AtomicUpdate => "atomic update",
            Fix::AdvisoryLock => "advisory lock",
            Fix::Constraint => "exclusion constraint",
        }
    }

    /// The locking clause the reads get.
    pub fn lock_clause(self) -> &'static str {
        match self {
            Fix::ForUpdate => " FOR UPDATE",
            Fix::ForShare => " FOR SHARE",
            _ => "",
        }
    }
}

/// A fix by its mode name or the lab's spelling, case-insensitive.
pub fn parse(mode: &str) -> Option<Fix> {
    let m = mode.trim();
    ALL.iter()
        .copied()
        .find(|f| f.name().eq_ignore_ascii_case(m) || f.alias().eq_ignore_ascii_case(m))
}

/// The fixes that can be run on a case: the ones whose mechanism reaches the conflict.
/// Row locks cannot lock a row that does not exist yet, so the predicate cases (pmp,
/// pmp_write, g2) get the advisory lock (and g2 a unique index over its predicate);
/// the read-only anomaly's fix is a level (SERIALIZABLE READ ONLY DEFERRABLE), and
/// PostgreSQL prevents g0, g1a, g1b, g1c and otv at every level, so they need none.
pub fn applicable(case: &Case) -> &'static [Fix] {
    match case.name {
        "p4" => &[
            Fix::ForUpdate,
            Fix::ForShare,
            Fix::AtomicUpdate,
            Fix::AdvisoryLock,
        ],
        "g_single" | "g_single_write" | "g2_item" => {
            &[Fix::ForUpdate, Fix::ForShare, Fix::AdvisoryLock]
        }
        "pmp" | "pmp_write" => &[Fix::AdvisoryLock],
        "g2" => &[Fix::AdvisoryLock, Fix::Constraint],
        _ => &[],
    }
}

/// The fix options of a case in one line, as isolation_matrix shows them: the modes
/// anomaly_demo runs, then what else would do and why the row-lock fixes do not.
pub fn options(case: &Case) -> String {
    let runnable: Vec<&str> = applicable(case).iter().map(|f| f.name()).collect();
    let note = match case.name {
        "g0" | "g1a" | "g1b" | "g1c" | "otv" => "none needed: prevented at every level",
        "pmp" | "pmp_write" => "row locks cannot lock rows not yet written; or materialise the predicate in a row both lock",
        "g2" => "row locks cannot lock rows not yet inserted; or materialise the predicate in a row both lock",
        "g2_item" => "or materialise the invariant in one row both update",
        "read_only" | "read_only_deferrable" => {
            "SERIALIZABLE READ ONLY DEFERRABLE for the reader (read_only_deferrable)"
        }
        _ => "",
    };
    match (runnable.is_empty(), note.is_empty()) {
        (true, _) => note.to_string(),
        (false, true) => runnable.join(", "),
        (false, false) => format!("{}; {note}", runnable.join(", ")),
    }
}

/// Extra setup the fix needs on the scratch table `t` (a qualified, quoted name).
pub fn setup(case: &Case, fix: Fix, t: &str) -> Vec<String> {
    match (case.name, fix) {
        // at most one row may match g2's predicate: the second insert waits for the
        // first and fails with 23505 when it commits
        ("g2", Fix::Constraint) => vec![format!(
            "CREATE UNIQUE INDEX ON {t} ((value % 3 = 0)) WHERE value % 3 = 0"
        )],
        _ => Vec::new(),
    }
}

/// The advisory-lock edit: every session's first statement after BEGIN takes the same
/// transaction-level advisory lock (keyed by the scratch table's oid), so the
/// transactions run one after another whatever the interleaving asks.
pub fn with_advisory_lock(steps: Vec<Step>, t: &str) -> Vec<Step> {
    let mut out = Vec::with_capacity(steps.len() + 3);
    for s in steps {
        let begin = s.label == "begin";
        let session = s.session;
        out.push(s);
        if begin {
            out.push(Step {
                session,
                label: "lock",
                sql: format!(
                    "SELECT pg_catalog.pg_advisory_xact_lock(min(tableoid)::bigint)::text FROM {t}"
                ),
            });
        }
    }
    // the begins come first; each session's lock follows all of them, so no session
    // takes the lock before every transaction has its snapshot level set
    let (begins, rest): (Vec<Step>, Vec<Step>) = out.into_iter().partition(|s| s.label == "begin");
    begins.into_iter().chain(rest).collect()
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::isolation::catalogue::{find, CASES};

    #[test]
    fn names_and_lab_spellings() {
        assert_eq!(parse("FOR_UPDATE"), Some(Fix::ForUpdate));
        assert_eq!(parse("select for update"), Some(Fix::ForUpdate));
        assert_eq!(parse(" advisory lock "), Some(Fix::AdvisoryLock));
        assert_eq!(parse("constraint"), Some(Fix::Constraint));
        assert_eq!(parse("serializable"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn every_case_has_options_and_only_anomalous_ones_have_fixes() {
        for c in CASES {
            assert!(!options(c).is_empty(), "{}", c.name);
        }
        for n in ["g0", "g1a", "g1b", "g1c", "otv", "read_only"] {
            assert!(find(n).is_some_and(|c| applicable(c).is_empty()), "{n}");
        }
        assert!(find("p4").is_some_and(|c| applicable(c).contains(&Fix::AtomicUpdate)));
        // row locks are not offered where the conflict is a row that does not exist yet
        for n in ["pmp", "pmp_write", "g2"] {
            assert!(
                find(n).is_some_and(|c| !applicable(c).contains(&Fix::ForUpdate)),
                "{n}"
            );
        }
    }

    #[test]
    fn the_lock_follows_every_begin() {
        let steps = vec![
            Step {
                session: 0,
                label: "begin",
                sql: "BEGIN".into(),
            },
            Step {
                session: 1,
                label: "begin",
                sql: "BEGIN".into(),
            },
            Step {
                session: 0,
                label: "a_r",
                sql: "SELECT 1".into(),
            },
            Step {
                session: 1,
                label: "b_r",
                sql: "SELECT 1".into(),
            },
        ];
        let out = with_advisory_lock(steps, "s.t");
        let labels: Vec<(usize, &str)> = out.iter().map(|s| (s.session, s.label)).collect();
        assert_eq!(
            labels,
            vec![
                (0, "begin"),
                (1, "begin"),
                (0, "lock"),
                (1, "lock"),
                (0, "a_r"),
                (1, "b_r")
            ]
        );
        assert!(out[2].sql.contains("pg_advisory_xact_lock") && out[2].sql.contains("FROM s.t"));
    }

    #[test]
    fn only_g2_constraint_needs_setup() {
        for c in CASES {
            for f in ALL {
                let s = setup(c, *f, "s.t");
                assert_eq!(
                    s.is_empty(),
                    !(c.name == "g2" && *f == Fix::Constraint),
                    "{} {:?}",
                    c.name,
                    f
                );
            }
        }
    }
}
