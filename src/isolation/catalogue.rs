//! The standard anomaly catalogue on a scratch table of two rows (id 1 = 10, id 2 = 20):
//! each case's interleaving and the verdict computed from what its sessions observed and
//! the final state. Pure: no pgrx types, unit-tested without a server.
//!
//! A verdict never comes from a table of expected outcomes. Each case states the
//! condition under which no serial order could have produced what the sessions saw (a
//! read of an uncommitted or rolled-back value, two reads of one predicate that differ, a
//! committed transaction that ignored a committed write, ...), and the mechanism that
//! stopped it is read from the run: a session blocked on another's lock, 40001, 40P01, a
//! constraint (23xxx), or nothing but the snapshot.

use super::driver::Step;
use super::fixes::{self, Fix};

/// One catalogue case: canonical short name, descriptive alias, sessions it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub name: &'static str,
    pub alias: &'static str,
    pub sessions: usize,
    /// what the anomaly is, in one line (the verdict row says it when observed)
    pub what: &'static str,
}

pub const CASES: &[Case] = &[
    Case { name: "g0", alias: "dirty_write", sessions: 2,
           what: "the final rows mix two transactions' writes" },
    Case { name: "g1a", alias: "aborted_read", sessions: 2,
           what: "a session read a value from a transaction that rolled back" },
    Case { name: "g1b", alias: "intermediate_read", sessions: 2,
           what: "a session read a value its writer later overwrote before committing" },
    Case { name: "g1c", alias: "circular_information_flow", sessions: 2,
           what: "each session read the other's uncommitted write" },
    Case { name: "otv", alias: "observed_transaction_vanishes", sessions: 3,
           what: "session C saw B's write, then a value B had overwritten" },
    Case { name: "pmp", alias: "predicate_many_preceders", sessions: 2,
           what: "one predicate read twice in a transaction gave two answers" },
    Case { name: "pmp_write", alias: "predicate_many_preceders_write", sessions: 2,
           what: "a committed DELETE by predicate removed no row, though every serial order removes one" },
    Case { name: "p4", alias: "lost_update", sessions: 2,
           what: "two read-modify-write increments committed, the value went up once" },
    Case { name: "g_single", alias: "read_skew", sessions: 2,
           what: "a session read one row before and one row after another transaction" },
    Case { name: "g_single_write", alias: "read_skew_write", sessions: 2,
           what: "a committed transaction read a row before another transaction and wrote by predicate after it" },
    Case { name: "g2_item", alias: "write_skew", sessions: 2,
           what: "both transactions committed, each having read the row the other changed" },
    Case { name: "g2", alias: "anti_dependency_cycles", sessions: 2,
           what: "both committed an insert matching the predicate the other read as empty" },
    Case { name: "read_only", alias: "read_only_anomaly", sessions: 3,
           what: "read-only session C saw the deposit but not the withdrawal, yet the withdrawal charged the overdraft fee" },
    Case { name: "read_only_deferrable", alias: "read_only_anomaly_deferrable", sessions: 3,
           what: "read-only DEFERRABLE session C saw the deposit but not the withdrawal, yet the withdrawal charged the overdraft fee" },
];

pub const LEVELS: &[&str] = &["read committed", "repeatable read", "serializable"];

/// Look a case up by its short name or its alias. `lost_update` and `write_skew` are
/// not looked up here: those names call the lab's business versions (stock decrement,
/// credit check) with their locking strategies; p4 and g2_item are the scratch forms.
pub fn find(name: &str) -> Option<&'static Case> {
    let n = name.trim();
    CASES.iter().find(|c| {
        c.name.eq_ignore_ascii_case(n) || (c.alias.eq_ignore_ascii_case(n) && !is_lab_name(c.alias))
    })
}

pub fn is_lab_name(n: &str) -> bool {
    n == "lost_update" || n == "write_skew"
}

/// Every name `find` accepts, short names first.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    v.extend(CASES.iter().map(|c| c.alias).filter(|a| !is_lab_name(a)));
    v
}

fn level_sql(level: &str) -> &'static str {
    match level {
        "repeatable read" => "REPEATABLE READ",
        "serializable" => "SERIALIZABLE",
        _ => "READ COMMITTED",
    }
}

/// Both rows as `1=10,2=20` (the sessions answer with one value).
pub fn read_all(t: &str) -> String {
    format!("SELECT coalesce(string_agg(id || '=' || value, ',' ORDER BY id), '') FROM {t}")
}

/// Both rows as `read_all` answers, read with a locking clause (`lk`: "" or " FOR UPDATE").
fn read_all_locked(t: &str, lk: &str) -> String {
    if lk.is_empty() {
        return read_all(t);
    }
    format!("SELECT coalesce(string_agg(id || '=' || value, ',' ORDER BY id), '') FROM (SELECT id, value FROM {t}{lk}) s")
}

fn read_id(t: &str, id: i32, lk: &str) -> String {
    format!("SELECT value::text FROM {t} WHERE id = {id}{lk}")
}

fn set(t: &str, id: i32, v: i32) -> String {
    format!("UPDATE {t} SET value = {v} WHERE id = {id}")
}

/// The interleaving of `case` under `level` on table `t` (already qualified and quoted),
/// with `fix` applied to its reads and writes when given (a fix runs at read committed).
pub fn script(case: &Case, level: &str, fix: Option<Fix>, t: &str) -> Vec<Step> {
    let steps = script_at(case, level, fix, t);
    match fix {
        Some(Fix::AdvisoryLock) => fixes::with_advisory_lock(steps, t),
        _ => steps,
    }
}

fn script_at(case: &Case, level: &str, fix: Option<Fix>, t: &str) -> Vec<Step> {
    let lk = fix.map(Fix::lock_clause).unwrap_or("");
    let mut out = Vec::new();
    let mut st = |session: usize, label: &'static str, sql: String| {
        out.push(Step {
            session,
            label,
            sql,
        })
    };
    let begin = format!("BEGIN ISOLATION LEVEL {}", level_sql(level));
    for s in 0..case.sessions {
        let sql = match (case.name, s) {
            ("read_only", 2) => format!("{begin} READ ONLY"),
            ("read_only_deferrable", 2) => format!("{begin} READ ONLY DEFERRABLE"),
            _ => begin.clone(),
        };
        st(s, "begin", sql);
    }
    let (a, b, c) = (0, 1, 2);
    match case.name {
        "g0" => {
            st(a, "a_w1", set(t, 1, 11));
            st(b, "b_w1", set(t, 1, 12));
            st(a, "a_w2", set(t, 2, 21));
            st(a, "commit", "COMMIT".into());
            st(b, "b_w2", set(t, 2, 22));
            st(b, "commit", "COMMIT".into());
        }
        "g1a" => {
            st(a, "a_w1", set(t, 1, 101));
            st(b, "b_r1", read_all(t));
            st(a, "rollback", "ROLLBACK".into());
            st(b, "b_r2", read_all(t));
            st(b, "commit", "COMMIT".into());
        }
        "g1b" => {
            st(a, "a_w1", set(t, 1, 101));
            st(b, "b_r1", read_all(t));
            st(a, "a_w2", set(t, 1, 11));
            st(a, "commit", "COMMIT".into());
            st(b, "b_r2", read_all(t));
            st(b, "commit", "COMMIT".into());
        }
        "g1c" => {
            st(a, "a_w1", set(t, 1, 11));
            st(b, "b_w2", set(t, 2, 22));
            st(a, "a_r2", read_id(t, 2, lk));
            st(b, "b_r1", read_id(t, 1, lk));
            st(a, "commit", "COMMIT".into());
            st(b, "commit", "COMMIT".into());
        }
        "otv" => {
            st(a, "a_w1", set(t, 1, 11));
            st(a, "a_w2", set(t, 2, 19));
            st(b, "b_w1", set(t, 1, 12));
            st(a, "commit", "COMMIT".into());
            st(c, "c_r1", read_id(t, 1, lk));
            st(b, "b_w2", set(t, 2, 18));
            st(c, "c_r2", read_id(t, 2, lk));
            st(b, "commit", "COMMIT".into());
            st(c, "c_r3", read_id(t, 2, lk));
            st(c, "c_r4", read_id(t, 1, lk));
            st(c, "commit", "COMMIT".into());
        }
        "pmp" => {
            let q = format!("SELECT count(*)::text FROM {t} WHERE value = 30");
            st(a, "a_r1", q.clone());
            st(b, "b_ins", format!("INSERT INTO {t} VALUES (3, 30)"));
            st(b, "commit", "COMMIT".into());
            st(a, "a_r2", q);
            st(a, "commit", "COMMIT".into());
        }
        "pmp_write" => {
            st(a, "a_w", format!("UPDATE {t} SET value = value + 10"));
            st(b, "b_del", format!("DELETE FROM {t} WHERE value = 20"));
            st(a, "commit", "COMMIT".into());
            st(b, "b_r", read_all(t));
            st(b, "commit", "COMMIT".into());
        }
        "p4" => {
            let read = format!(
                "SELECT set_config('capstone_demo.read', value::text, false) FROM {t} WHERE id = 1{lk}"
            );
            let incr = if fix == Some(Fix::AtomicUpdate) {
                format!("UPDATE {t} SET value = value + 1 WHERE id = 1 RETURNING value::text")
            } else {
                format!(
                    "UPDATE {t} SET value = current_setting('capstone_demo.read')::int + 1 WHERE id = 1 RETURNING value::text"
                )
            };
            st(a, "a_r", read.clone());
            st(b, "b_r", read);
            st(a, "a_w", incr.clone());
            st(b, "b_w", incr);
            st(a, "commit", "COMMIT".into());
            st(b, "commit", "COMMIT".into());
        }
        "g_single" | "g_single_write" => {
            st(a, "a_r1", read_id(t, 1, lk));
            st(b, "b_r", read_all_locked(t, lk));
            st(b, "b_w1", set(t, 1, 12));
            st(b, "b_w2", set(t, 2, 18));
            st(b, "commit", "COMMIT".into());
            if case.name == "g_single" {
                st(a, "a_r2", read_id(t, 2, lk));
            } else {
                st(a, "a_del", format!("DELETE FROM {t} WHERE value = 20"));
            }
            st(a, "commit", "COMMIT".into());
        }
        "g2_item" => {
            st(a, "a_r", read_all_locked(t, lk));
            st(b, "b_r", read_all_locked(t, lk));
            st(a, "a_w", set(t, 1, 11));
            st(b, "b_w", set(t, 2, 21));
            st(a, "commit", "COMMIT".into());
            st(b, "commit", "COMMIT".into());
        }
        "g2" => {
            let q = format!("SELECT count(*)::text FROM {t} WHERE value % 3 = 0");
            st(a, "a_r", q.clone());
            st(b, "b_r", q);
            st(a, "a_ins", format!("INSERT INTO {t} VALUES (3, 30)"));
            st(b, "b_ins", format!("INSERT INTO {t} VALUES (4, 42)"));
            st(a, "commit", "COMMIT".into());
            st(b, "commit", "COMMIT".into());
        }
        _ => {
            // read_only, read_only_deferrable: id 1 is checking, id 2 savings. A
            // withdraws 35 from checking and charges a fee of 1 if the balance it read was
            // below 35; B deposits 20 into savings; C, read-only, reports both.
            st(
                a,
                "a_r",
                format!(
                    "SELECT set_config('capstone_demo.total', sum(value)::text, false) FROM {t}"
                ),
            );
            st(
                b,
                "b_w",
                format!("UPDATE {t} SET value = value + 20 WHERE id = 2"),
            );
            st(b, "commit", "COMMIT".into());
            st(c, "c_r", read_all(t));
            st(c, "commit", "COMMIT".into());
            st(
                a,
                "a_w",
                format!(
                    "UPDATE {t} SET value = value - 35 - CASE WHEN current_setting('capstone_demo.total')::int < 35 THEN 1 ELSE 0 END WHERE id = 1 RETURNING value::text"
                ),
            );
            st(a, "commit", "COMMIT".into());
        }
    }
    out
}

/// What one scripted statement did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Obs {
    pub session: usize,
    pub label: &'static str,
    /// the order it was sent in: the answers arrive in the order the server gives them
    /// (which of two deadlocked sessions fails first is the server's pick), so the verdict
    /// lists waits in the order they began
    pub sent: i32,
    /// the answer when it succeeded
    pub value: Option<String>,
    /// the SQLSTATE when it failed (or was skipped: the transaction had failed)
    pub code: Option<String>,
    /// it waited: for which sessions, and whether for a safe snapshot rather than a lock
    pub waited_for: Vec<usize>,
    pub safe_snapshot: bool,
    pub skipped: bool,
}

pub fn label(s: usize) -> &'static str {
    ["A", "B", "C", "D"].get(s).copied().unwrap_or("?")
}

/// The verdict of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub observed: bool,
    /// how it was prevented: waits, error codes; empty when observed or when the
    /// snapshot alone kept the sessions apart
    pub how: Vec<String>,
}

impl Verdict {
    /// The matrix cell: `observed`, `prevented (40001)`, `prevented (blocked: B waited for A; 40001)`.
    pub fn cell(&self) -> String {
        if self.observed {
            "observed".into()
        } else if self.how.is_empty() {
            "prevented (snapshot)".into()
        } else {
            format!("prevented ({})", self.how.join("; "))
        }
    }

    /// The verdict row's text.
    pub fn text(&self, case: &Case, final_state: &str) -> String {
        if self.observed {
            format!(
                "ANOMALY {}: {}; final rows {final_state}",
                case.name, case.what
            )
        } else {
            format!("{}: final rows {final_state}", self.cell())
        }
    }
}

fn value<'a>(obs: &'a [Obs], session: usize, label: &str) -> Option<&'a str> {
    obs.iter()
        .find(|o| o.session == session && o.label == label)
        .and_then(|o| o.value.as_deref())
}

fn committed(obs: &[Obs], session: usize) -> bool {
    value(obs, session, "commit") == Some("COMMIT")
}

/// `1=10,2=20` → the value of row `id`.
pub fn row(state: &str, id: i32) -> Option<i64> {
    state.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().parse::<i32>().ok()? == id).then(|| v.trim().parse().ok())?
    })
}

/// Whether the anomaly happened, from the observations and the final rows.
pub fn observed(case: &Case, obs: &[Obs], final_state: &str) -> bool {
    let (a, b, c) = (0, 1, 2);
    let num = |s: usize, l: &str| value(obs, s, l).and_then(|v| v.trim().parse::<i64>().ok());
    match case.name {
        // one row from each writer
        "g0" => {
            let (x, y) = (row(final_state, 1), row(final_state, 2));
            matches!((x, y), (Some(11), Some(22)) | (Some(12), Some(21)))
        }
        "g1a" | "g1b" => ["b_r1", "b_r2"]
            .iter()
            .any(|l| value(obs, b, l).and_then(|v| row(v, 1)) == Some(101)),
        "g1c" => num(a, "a_r2") == Some(22) || num(b, "b_r1") == Some(11),
        "otv" => {
            // (row, value) that C read, in order; B wrote 12 and 18 over A's 11 and 19
            let reads = [("c_r1", 1), ("c_r2", 2), ("c_r3", 2), ("c_r4", 1)]
                .iter()
                .filter_map(|&(l, id)| num(c, l).map(|v| (id, v)))
                .collect::<Vec<_>>();
            let by_b = |(id, v): (i32, i64)| (id == 1 && v == 12) || (id == 2 && v == 18);
            let overwritten = |(id, v): (i32, i64)| (id == 1 && v == 11) || (id == 2 && v == 19);
            reads
                .iter()
                .enumerate()
                .any(|(i, &r)| by_b(r) && reads[i + 1..].iter().any(|&later| overwritten(later)))
        }
        "pmp" => {
            let (r1, r2) = (num(a, "a_r1"), num(a, "a_r2"));
            r1.is_some() && r2.is_some() && r1 != r2
        }
        "pmp_write" => committed(obs, b) && value(obs, b, "b_del") == Some("DELETE 0"),
        "p4" => committed(obs, a) && committed(obs, b) && row(final_state, 1) == Some(11),
        "g_single" => match (num(a, "a_r1"), num(a, "a_r2")) {
            (Some(x), Some(y)) => x + y != 30,
            _ => false,
        },
        "g_single_write" => {
            committed(obs, a)
                && num(a, "a_r1") == Some(10)
                && value(obs, a, "a_del") == Some("DELETE 0")
        }
        "g2_item" => {
            committed(obs, a)
                && committed(obs, b)
                && value(obs, a, "a_r") == Some("1=10,2=20")
                && value(obs, b, "b_r") == Some("1=10,2=20")
        }
        "g2" => {
            committed(obs, a)
                && committed(obs, b)
                && num(a, "a_r") == Some(0)
                && num(b, "b_r") == Some(0)
        }
        // read_only*: C saw savings after the deposit and checking before the withdrawal,
        // so in any serial order C fits in, A ran after B and saw 50: no fee. A charged it.
        _ => {
            let seen = value(obs, c, "c_r").unwrap_or("");
            committed(obs, a)
                && committed(obs, c)
                && row(seen, 1) == Some(10)
                && row(seen, 2) == Some(40)
                && num(a, "a_r") == Some(30)
                && row(final_state, 1) == Some(10 - 35 - 1)
        }
    }
}

/// The verdict: whether it happened and, if not, what stopped it.
pub fn verdict(case: &Case, obs: &[Obs], final_state: &str) -> Verdict {
    let observed = observed(case, obs, final_state);
    let mut how = Vec::new();
    if !observed {
        let mut by_send: Vec<&Obs> = obs.iter().collect();
        by_send.sort_by_key(|o| o.sent);
        for o in by_send {
            if !o.waited_for.is_empty() {
                let who = o
                    .waited_for
                    .iter()
                    .map(|&s| label(s))
                    .collect::<Vec<_>>()
                    .join(", ");
                let w = if o.safe_snapshot {
                    format!(
                        "deferred: {} waited for a safe snapshot until {who} finished",
                        label(o.session)
                    )
                } else {
                    format!("blocked: {} waited for {who}", label(o.session))
                };
                if !how.contains(&w) {
                    how.push(w);
                }
            }
        }
        for o in obs.iter().filter(|o| !o.skipped) {
            if let Some(code) = &o.code {
                if code.starts_with("40") || code.starts_with("23") {
                    let w = code.clone();
                    if !how.contains(&w) {
                        how.push(w);
                    }
                }
            }
        }
    }
    Verdict { observed, how }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn ob(session: usize, label: &'static str, value: &str) -> Obs {
        Obs {
            session,
            label,
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn fail(session: usize, label: &'static str, code: &str) -> Obs {
        Obs {
            session,
            label,
            code: Some(code.into()),
            ..Default::default()
        }
    }

    fn case(n: &str) -> &'static Case {
        let c = find(n);
        assert!(c.is_some(), "no catalogue case {n}");
        c.unwrap_or(&CASES[0])
    }

    #[test]
    fn names_and_aliases() {
        assert_eq!(find("G0").map(|c| c.name), Some("g0"));
        assert_eq!(find("dirty_write").map(|c| c.name), Some("g0"));
        assert_eq!(find("read_skew").map(|c| c.name), Some("g_single"));
        // the lab's names stay the lab's
        assert!(find("lost_update").is_none());
        assert!(find("write_skew").is_none());
        assert!(find("phantom").is_none());
        assert!(names().contains(&"p4") && !names().contains(&"lost_update"));
    }

    #[test]
    fn every_script_begins_every_session_and_ends_every_transaction() {
        for c in CASES {
            for l in LEVELS {
                let s = script(c, l, None, "x.t");
                for k in 0..c.sessions {
                    let mine: Vec<_> = s.iter().filter(|x| x.session == k).collect();
                    assert!(
                        mine.first().is_some_and(|x| x.sql.starts_with("BEGIN")),
                        "{}",
                        c.name
                    );
                    assert!(
                        mine.last()
                            .is_some_and(|x| x.sql == "COMMIT" || x.sql == "ROLLBACK"),
                        "{} {k}",
                        c.name
                    );
                }
                assert!(s.iter().all(|x| x.session < c.sessions));
                assert!(s.iter().all(|x| !x.sql.contains(';')));
            }
        }
        let ro = script(case("read_only_deferrable"), "serializable", None, "x.t");
        assert_eq!(
            ro[2].sql,
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"
        );
    }

    #[test]
    fn dirty_write_is_a_mix_of_writers() {
        let c = case("g0");
        assert!(observed(c, &[], "1=12,2=21"));
        assert!(!observed(c, &[], "1=12,2=22"));
        let mut waited = ob(1, "b_w1", "UPDATE 1");
        waited.waited_for = vec![0];
        let v = verdict(c, &[waited, fail(1, "b_w1", "40001")], "1=11,2=21");
        assert_eq!(v.cell(), "prevented (blocked: B waited for A; 40001)");
    }

    #[test]
    fn a_deadlock_reads_the_same_whichever_session_the_server_picks() {
        // A sent its write first and waited for B; B then waited for A. The server
        // fails one of them with 40P01, so the answers arrive in either order.
        let c = case("p4");
        let mut a = fail(0, "a_w", "40P01");
        a.waited_for = vec![1];
        a.sent = 5;
        let mut b = ob(1, "b_w", "UPDATE 1");
        b.waited_for = vec![0];
        b.sent = 6;
        let want = "prevented (blocked: A waited for B; blocked: B waited for A; 40P01)";
        let a_first = verdict(c, &[a.clone(), b.clone()], "1=11,2=20");
        let b_first = verdict(c, &[b, a], "1=11,2=20");
        assert_eq!(a_first.cell(), want);
        assert_eq!(b_first.cell(), want);
    }

    #[test]
    fn reads_decide_the_read_anomalies() {
        assert!(observed(case("g1a"), &[ob(1, "b_r1", "1=101,2=20")], ""));
        assert!(!observed(case("g1a"), &[ob(1, "b_r1", "1=10,2=20")], ""));
        assert!(observed(
            case("pmp"),
            &[ob(0, "a_r1", "0"), ob(0, "a_r2", "1")],
            ""
        ));
        assert!(!observed(
            case("pmp"),
            &[ob(0, "a_r1", "0"), ob(0, "a_r2", "0")],
            ""
        ));
        assert!(observed(
            case("g_single"),
            &[ob(0, "a_r1", "10"), ob(0, "a_r2", "18")],
            ""
        ));
        assert!(!observed(
            case("g_single"),
            &[ob(0, "a_r1", "10"), ob(0, "a_r2", "20")],
            ""
        ));
        let otv = |vals: [&str; 4]| {
            let l = ["c_r1", "c_r2", "c_r3", "c_r4"];
            (0..4).map(|i| ob(2, l[i], vals[i])).collect::<Vec<_>>()
        };
        assert!(!observed(case("otv"), &otv(["11", "19", "18", "12"]), ""));
        assert!(observed(case("otv"), &otv(["11", "19", "18", "11"]), ""));
        assert_eq!(
            verdict(case("g1a"), &[], "1=10,2=20").cell(),
            "prevented (snapshot)"
        );
    }

    #[test]
    fn committed_writes_decide_the_write_anomalies() {
        let both = [ob(0, "commit", "COMMIT"), ob(1, "commit", "COMMIT")];
        assert!(observed(case("p4"), &both, "1=11,2=20"));
        assert!(!observed(case("p4"), &both, "1=12,2=20"));
        let mut g2 = both.to_vec();
        g2.extend([ob(0, "a_r", "0"), ob(1, "b_r", "0")]);
        assert!(observed(case("g2"), &g2, ""));
        let one = [
            ob(0, "commit", "COMMIT"),
            fail(1, "commit", "40001"),
            ob(0, "a_r", "0"),
            ob(1, "b_r", "0"),
        ];
        assert!(!observed(case("g2"), &one, ""));
        assert_eq!(verdict(case("g2"), &one, "").cell(), "prevented (40001)");
        let pw = [ob(1, "b_del", "DELETE 0"), ob(1, "commit", "COMMIT")];
        assert!(observed(case("pmp_write"), &pw, "1=20,2=30"));
    }

    #[test]
    fn the_read_only_anomaly_needs_the_report_and_the_fee() {
        let c = case("read_only");
        let mut obs = vec![
            ob(0, "a_r", "30"),
            ob(2, "c_r", "1=10,2=40"),
            ob(0, "commit", "COMMIT"),
            ob(2, "commit", "COMMIT"),
        ];
        assert!(observed(c, &obs, "1=-26,2=40"));
        obs[1] = ob(2, "c_r", "1=-26,2=40");
        obs[1].waited_for = vec![0];
        obs[1].safe_snapshot = true;
        let v = verdict(case("read_only_deferrable"), &obs, "1=-26,2=40");
        assert_eq!(
            v.cell(),
            "prevented (deferred: C waited for a safe snapshot until A finished)"
        );
    }

    #[test]
    fn rows_parse() {
        assert_eq!(row("1=10,2=20", 2), Some(20));
        assert_eq!(row("1=-26,2=40", 1), Some(-26));
        assert_eq!(row("", 1), None);
    }
}
