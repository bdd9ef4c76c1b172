//! Unit tests of the grading with a fake catalog: sizes, validated checks, volatility.

use super::super::model::*;
use super::super::types;
use super::{Facts, Linter};

#[derive(Default)]
struct Fake {
    bytes: i64,
    checked: bool,
    volatile: bool,
    old_type: u32,
    old_typmod: i32,
}

impl Facts for Fake {
    fn table(&mut self, _t: &Name) -> TableFacts {
        TableFacts {
            exists: true,
            heap_bytes: self.bytes,
            total_bytes: self.bytes * 2,
            rows: (self.bytes / 100) as f64,
        }
    }
    fn column(&mut self, _t: &Name, _c: &str) -> ColumnFacts {
        ColumnFacts {
            exists: true,
            type_oid: self.old_type,
            typmod: self.old_typmod,
            not_null: false,
            checked_not_null: self.checked,
            indexed: false,
            in_check: false,
        }
    }
    fn volatile(&mut self, _e: &Expr) -> bool {
        self.volatile
    }
    fn coercible(&mut self, from: u32, to: u32) -> bool {
        from == types::VARCHAR && to == types::TEXT
    }
    fn index_table(&mut self, _i: &Name) -> Option<Name> {
        Some(t())
    }
    fn constraint_kind(&mut self, _t: &Name, name: &str) -> Option<(char, i64)> {
        // the test names say what they are: pk, uk_referenced, chk, fk
        match name {
            "pk" => Some(('p', 0)),
            "uk_referenced" => Some(('u', 2)),
            "chk" => Some(('c', 0)),
            "fk" => Some(('f', 0)),
            _ => None,
        }
    }
    fn misfits(&mut self, _t: &Name, _c: &str, _ty: &TypeSpec) -> Option<i64> {
        None
    }
    fn category(&mut self, oid: u32) -> char {
        if oid == types::TEXT || oid == types::VARCHAR {
            'S'
        } else {
            'N'
        }
    }
}

fn t() -> Name {
    Name::new(None, "accounts".into())
}

fn alter(c: Cmd) -> Action {
    Action::AlterTable {
        table: t(),
        cmds: vec![c],
    }
}

fn rules(f: &mut Fake, actions: &[Action]) -> Vec<(&'static str, &'static str)> {
    let mut l = Linter::new(f, Settings::default());
    let mut out = Vec::new();
    for a in actions {
        out.extend(l.statement(a).into_iter().map(|x| (x.rule, x.severity)));
    }
    // type hygiene (info) and the statement_timeout rule are tested on their own
    out.retain(|x| x.1 != "info" && x.0 != "require-statement-timeout");
    out.extend(l.finish().into_iter().map(|x| (x.rule, x.severity)));
    out
}

fn timeout() -> Action {
    Action::Set {
        name: "lock_timeout".into(),
        local: false,
        on: true,
    }
}

fn add_col(default: Option<Expr>) -> Action {
    alter(Cmd::AddColumn {
        col: "t".into(),
        ty: TypeSpec {
            oid: types::TIMESTAMPTZ,
            typmod: -1,
            base: "timestamptz".into(),
            display: "timestamp with time zone".into(),
            array: false,
            domain_base: None,
        },
        default,
        not_null: false,
        generated: None,
        identity: false,
        inline: vec![],
    })
}

#[test]
fn volatile_default_rewrites_and_stable_does_not() {
    let e = Some(Expr {
        text: "clock_timestamp()".into(),
        ..Default::default()
    });
    let mut f = Fake {
        bytes: 300 << 20,
        volatile: true,
        ..Default::default()
    };
    let r = rules(&mut f, &[timeout(), add_col(e.clone())]);
    assert_eq!(r, vec![("adding-field-with-default", "high")]);
    f.volatile = false;
    assert!(rules(&mut f, &[timeout(), add_col(e)]).is_empty());
}

#[test]
fn small_tables_lower_the_severity() {
    let mut f = Fake {
        bytes: 8192,
        ..Default::default()
    };
    let r = rules(
        &mut f,
        &[timeout(), alter(Cmd::SetNotNull { col: "c".into() })],
    );
    assert_eq!(r, vec![("adding-not-nullable-field", "low")]);
}

#[test]
fn validated_check_makes_set_not_null_harmless() {
    let mut f = Fake {
        bytes: 300 << 20,
        checked: true,
        ..Default::default()
    };
    let r = rules(
        &mut f,
        &[timeout(), alter(Cmd::SetNotNull { col: "c".into() })],
    );
    assert!(r.is_empty());
    // a check added NOT VALID and validated earlier in the same migration counts too
    f.checked = false;
    let r = rules(
        &mut f,
        &[
            timeout(),
            alter(Cmd::AddCheck {
                name: Some("c_nn".into()),
                not_null_col: Some("c".into()),
                not_valid: true,
            }),
            alter(Cmd::Validate {
                name: "c_nn".into(),
            }),
            alter(Cmd::SetNotNull { col: "c".into() }),
        ],
    );
    assert!(r.is_empty());
}

#[test]
fn lock_timeout_tracks_set_local_and_reset() {
    let mut f = Fake::default();
    let drop = alter(Cmd::Other {
        lock: Lock::AccessExclusive,
    });
    assert_eq!(
        rules(&mut f, std::slice::from_ref(&drop)),
        vec![("require-lock-timeout", "high")]
    );
    let local = Action::Set {
        name: "lock_timeout".into(),
        local: true,
        on: true,
    };
    let r = rules(
        &mut f,
        &[Action::Begin, local, drop.clone(), Action::Commit, drop],
    );
    assert_eq!(r, vec![("require-lock-timeout", "high")]);
}

#[test]
fn tables_created_in_the_migration_are_exempt() {
    let mut f = Fake {
        bytes: 1 << 30,
        ..Default::default()
    };
    let r = rules(
        &mut f,
        &[
            Action::CreateTable {
                table: t(),
                columns: vec![],
            },
            Action::CreateIndex {
                table: t(),
                name: None,
                concurrent: false,
                unique: false,
                columns: 1,
                if_not_exists: false,
            },
            alter(Cmd::DropConstraint { name: "pk".into() }),
        ],
    );
    assert!(r.is_empty());
}

#[test]
fn transactions_nesting_concurrency_and_uncommitted() {
    let mut f = Fake {
        bytes: 1 << 30,
        ..Default::default()
    };
    let cic = Action::CreateIndex {
        table: t(),
        name: Some("i".into()),
        concurrent: true,
        unique: false,
        columns: 1,
        if_not_exists: true,
    };
    let r = rules(&mut f, &[Action::Begin, Action::Begin, cic]);
    assert_eq!(
        r,
        vec![
            ("transaction-nesting", "medium"),
            ("ban-concurrent-index-creation-in-transaction", "error"),
            ("ban-uncommitted-transaction", "medium"),
        ]
    );
}

#[test]
fn type_change_uses_the_catalog() {
    let mut f = Fake {
        bytes: 1 << 30,
        old_type: types::VARCHAR,
        old_typmod: 14,
        ..Default::default()
    };
    let to = |oid: u32, typmod: i32| {
        alter(Cmd::AlterType {
            col: "c".into(),
            ty: TypeSpec {
                oid,
                typmod,
                base: "x".into(),
                display: "x".into(),
                array: false,
                domain_base: None,
            },
            using: None,
        })
    };
    assert!(rules(&mut f, &[timeout(), to(types::TEXT, -1)]).is_empty());
    assert!(rules(&mut f, &[timeout(), to(types::VARCHAR, 24)]).is_empty());
    f.old_type = types::INT4;
    f.old_typmod = -1;
    assert_eq!(
        rules(&mut f, &[timeout(), to(types::INT8, -1)]),
        vec![("changing-column-type", "high")]
    );
}

#[test]
fn pg18_offers_not_null_not_valid() {
    let mut f = Fake {
        bytes: 1 << 30,
        ..Default::default()
    };
    let alt = |f: &mut Fake, major: u32| {
        let mut l = Linter::new(
            f,
            Settings {
                pg_major: major,
                ..Settings::default()
            },
        );
        l.statement(&alter(Cmd::SetNotNull { col: "c".into() }))
            .into_iter()
            .find(|x| x.rule == "adding-not-nullable-field")
            .map(|x| x.safe_alternative)
            .unwrap_or_default()
    };
    assert!(alt(&mut f, 18).contains("NOT NULL c NOT VALID"));
    assert!(alt(&mut f, 17).contains("CHECK (c IS NOT NULL) NOT VALID"));
}

#[test]
fn estimate_follows_size_and_throughput() {
    let mut f = Fake {
        bytes: 100 << 20,
        volatile: true,
        ..Default::default()
    };
    let mut l = Linter::new(&mut f, Settings::default());
    let e = Some(Expr {
        text: "random()".into(),
        ..Default::default()
    });
    let found = l.statement(&add_col(e));
    let rewrite = found
        .iter()
        .find(|x| x.rule == "adding-field-with-default")
        .and_then(|x| x.estimated_ms);
    // a rewrite writes the total size (the fake's is twice the heap): 200 MB at 100 MB/s
    assert_eq!(rewrite.map(|m| m.round()), Some(2000.0));
}

fn set(name: &str, local: bool, on: bool) -> Action {
    Action::Set {
        name: name.into(),
        local,
        on,
    }
}

/// The require-statement-timeout findings of a migration, as (severity, alternative).
fn statement_timeouts(
    f: &mut Fake,
    settings: Settings,
    actions: &[Action],
) -> Vec<(String, String)> {
    let mut l = Linter::new(f, settings);
    let mut out = Vec::new();
    for a in actions {
        for x in l.statement(a) {
            if x.rule == "require-statement-timeout" {
                out.push((x.severity.to_string(), x.safe_alternative));
            }
        }
    }
    out
}

#[test]
fn statement_timeout_bounds_rewrites_and_scans() {
    let mut f = Fake {
        bytes: 300 << 20,
        volatile: true,
        ..Default::default()
    };
    let rewrite = add_col(Some(Expr {
        text: "clock_timestamp()".into(),
        ..Default::default()
    }));
    let s = Settings::default;
    // 600 MB rewritten at 100 MB/s: about 6 s, so about 18 s suggested
    let r = statement_timeouts(&mut f, s(), std::slice::from_ref(&rewrite));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "medium");
    assert!(
        r[0].1.starts_with("SET statement_timeout = '18s'"),
        "{}",
        r[0].1
    );
    // set for the session, then reset
    let on = set("statement_timeout", false, true);
    assert!(statement_timeouts(&mut f, s(), &[on.clone(), rewrite.clone()]).is_empty());
    let r = statement_timeouts(
        &mut f,
        s(),
        &[
            on.clone(),
            set("statement_timeout", false, false),
            rewrite.clone(),
        ],
    );
    assert_eq!(r.len(), 1);
    let r = statement_timeouts(&mut f, s(), &[on, set("*", false, false), rewrite.clone()]);
    assert_eq!(r.len(), 1);
    // SET LOCAL lasts until the end of its transaction
    let local = set("statement_timeout", true, true);
    let r = statement_timeouts(
        &mut f,
        s(),
        &[
            Action::Begin,
            local,
            rewrite.clone(),
            Action::Commit,
            rewrite.clone(),
        ],
    );
    assert_eq!(r.len(), 1);
    // transaction_timeout bounds the statement on 17+, and is not a setting before
    let tx = set("transaction_timeout", false, true);
    let v = |major: u32| Settings {
        pg_major: major,
        ..Settings::default()
    };
    assert!(statement_timeouts(&mut f, v(17), &[tx.clone(), rewrite.clone()]).is_empty());
    assert_eq!(
        statement_timeouts(&mut f, v(16), &[tx, rewrite.clone()]).len(),
        1
    );
    // safe_ddl's session may already have one
    let bounded = Settings {
        statement_timeout: true,
        ..Settings::default()
    };
    assert!(statement_timeouts(&mut f, bounded, std::slice::from_ref(&rewrite)).is_empty());
    // a metadata-only change needs none; a small table's rewrite gets a low one
    f.volatile = false;
    assert!(statement_timeouts(&mut f, s(), std::slice::from_ref(&rewrite)).is_empty());
    f.volatile = true;
    f.bytes = 1 << 20;
    let r = statement_timeouts(&mut f, s(), &[rewrite]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "low");
    assert!(
        r[0].1.starts_with("SET statement_timeout = '1s'"),
        "{}",
        r[0].1
    );
}

fn unguarded(what: &str, concurrent_index: bool) -> Rerun {
    Rerun::Unguarded {
        what: what.into(),
        clause: "IF NOT EXISTS",
        concurrent_index,
    }
}

#[test]
fn reruns_are_flagged_outside_a_transaction_only() {
    let mut f = Fake::default();
    let mut l = Linter::new(&mut f, Settings::default());
    let form = |reruns: Vec<Rerun>| Form {
        reruns,
        unqualified: vec![],
    };
    let add = form(vec![unguarded("ALTER TABLE t ADD COLUMN c", false)]);
    assert_eq!(l.form(&add, false).len(), 1);
    assert!(l.form(&add, true).is_empty());
    // a failed CREATE INDEX CONCURRENTLY leaves an invalid index: flagged in any case
    let cic = form(vec![unguarded("CREATE INDEX i", true)]);
    assert_eq!(l.form(&cic, true).len(), 1);
    // ADD CONSTRAINT after DROP CONSTRAINT IF EXISTS of the same name reruns fine
    let add_c = |n: &str| {
        form(vec![Rerun::AddConstraint {
            table: "t".into(),
            name: Some(n.into()),
        }])
    };
    assert_eq!(l.form(&add_c("c1"), false).len(), 1);
    let drop_c = form(vec![Rerun::DropConstraint {
        name: "c1".into(),
        guarded: true,
    }]);
    assert!(l.form(&drop_c, false).is_empty());
    assert!(l.form(&add_c("c1"), false).is_empty());
    assert_eq!(l.form(&add_c("c2"), false).len(), 1);
    let unguarded_drop = form(vec![Rerun::DropConstraint {
        name: "c3".into(),
        guarded: false,
    }]);
    assert_eq!(l.form(&unguarded_drop, false).len(), 1);
    assert!(l.form(&unguarded_drop, true).is_empty());
}

#[test]
fn an_unqualified_table_is_reported_once_with_where_it_resolves() {
    let mut f = Fake::default();
    let mut l = Linter::new(&mut f, Settings::default());
    let u = |verb: &'static str, s: Option<&str>| Form {
        reruns: vec![],
        unqualified: vec![Unqualified {
            verb,
            name: "orders".into(),
            resolves_to: s.map(String::from),
        }],
    };
    let first = l.form(&u("ALTER TABLE", Some("shop")), true);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].rule, "require-table-schema");
    assert!(first[0].finding.contains("shop.orders"));
    assert_eq!(first[0].safe_alternative, "ALTER TABLE shop.orders");
    assert!(l.form(&u("DROP TABLE", Some("shop")), true).is_empty());
}

#[test]
fn identifiers_longer_than_postgresql_keeps() {
    use super::form::long_identifiers;
    let long = "a".repeat(70);
    let r = long_identifiers(&format!("CREATE TABLE {long} (id int)"));
    assert_eq!(r, vec![(long.clone(), "a".repeat(63))]);
    // unquoted words fold to lower case; quoted names keep their case and quotes go
    let upper = "B".repeat(64);
    assert_eq!(
        long_identifiers(&format!("ALTER TABLE t ADD COLUMN {upper} int")),
        vec![("b".repeat(64), "b".repeat(63))]
    );
    let q = format!("\"{}\"", "Q".repeat(64));
    assert_eq!(long_identifiers(&format!("DROP TABLE {q}")).len(), 1);
    // exactly 63 bytes is kept whole; strings and comments are not identifiers
    let at = "c".repeat(63);
    assert!(long_identifiers(&format!("CREATE TABLE {at} ()")).is_empty());
    assert!(long_identifiers(&format!("SELECT '{long}' -- {long}\n")).is_empty());
    assert!(long_identifiers(&format!("SELECT $x${long}$x$ /* {long} */")).is_empty());
    // a multibyte name is cut on a character boundary
    let e = "é".repeat(40);
    let r = long_identifiers(&format!("CREATE TABLE \"{e}\" ()"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "é".repeat(31));
    // each name once
    assert_eq!(long_identifiers(&format!("SELECT {long}, {long}")).len(), 1);
}

#[test]
fn a_constrained_domain_column_rewrites() {
    let mut f = Fake {
        bytes: 300 << 20,
        ..Default::default()
    };
    let mut add = add_col(None);
    if let Action::AlterTable { cmds, .. } = &mut add {
        if let Some(Cmd::AddColumn { ty, .. }) = cmds.first_mut() {
            ty.domain_base = Some("integer".into());
        }
    }
    assert_eq!(
        rules(&mut f, &[timeout(), add.clone()]),
        vec![("adding-field-with-default", "high")]
    );
    let mut l = Linter::new(&mut f, Settings::default());
    let alt = l
        .statement(&add)
        .into_iter()
        .find(|x| x.rule == "adding-field-with-default")
        .map(|x| x.safe_alternative)
        .unwrap_or_default();
    assert!(alt.contains("ADD COLUMN t integer"), "{alt}");
    assert!(alt.contains("NOT VALID"), "{alt}");
}

#[test]
fn what_a_drop_breaks_comes_from_the_catalog() {
    let mut f = Fake::default();
    let drop_c = |n: &str| alter(Cmd::DropConstraint { name: n.into() });
    let sev = |f: &mut Fake, a: Action, rule: &str| {
        let mut l = Linter::new(f, Settings::default());
        l.statement(&a)
            .into_iter()
            .find(|x| x.rule == rule)
            .map(|x| (x.severity, x.finding))
    };
    let pk = sev(&mut f, drop_c("pk"), "ban-drop-constraint").unwrap_or_default();
    assert_eq!(pk.0, "high");
    assert!(pk.1.contains("primary key"), "{}", pk.1);
    let uk = sev(&mut f, drop_c("uk_referenced"), "ban-drop-constraint").unwrap_or_default();
    assert!(uk.1.contains("2 foreign key(s)"), "{}", uk.1);
    assert_eq!(
        sev(&mut f, drop_c("chk"), "ban-drop-constraint").map(|x| x.0),
        Some("low")
    );
    assert_eq!(
        sev(&mut f, drop_c("fk"), "ban-drop-constraint").map(|x| x.0),
        Some("low")
    );
    assert_eq!(
        sev(&mut f, drop_c("gone"), "ban-drop-constraint").map(|x| x.0),
        Some("medium")
    );
    // DROP DEFAULT: a NOT NULL column makes inserts that omit it fail
    let dd = alter(Cmd::DropDefault { col: "c".into() });
    assert_eq!(
        sev(&mut f, dd, "ban-drop-default").map(|x| x.0),
        Some("medium")
    );
    let drop_view = Action::DropObject {
        rule: "ban-drop-view",
        what: "VIEW",
        names: vec!["v".into()],
        cascade: true,
    };
    let v = sev(&mut f, drop_view, "ban-drop-view").unwrap_or_default();
    assert_eq!(v.0, "high");
    assert!(v.1.contains("CASCADE"), "{}", v.1);
}
