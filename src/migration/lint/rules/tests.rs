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
    // type hygiene (info) is tested on its own
    out.retain(|x| x.1 != "info");
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
    let drop = alter(Cmd::DropConstraint);
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
            alter(Cmd::DropConstraint),
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
