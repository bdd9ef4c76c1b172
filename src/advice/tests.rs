//! #[pg_test]s for hypothetical indexes: what plain EXPLAIN sees, what EXPLAIN
//! ANALYZE and other sessions' state never see, and each refusal's SQLSTATE.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup() {
        let ok = Spi::run(
            "CREATE FUNCTION hypo_test_sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $f$;
             CREATE FUNCTION hypo_test_plan(q text) RETURNS text LANGUAGE plpgsql AS $f$
             DECLARE r text; o text := '';
             BEGIN FOR r IN EXECUTE q LOOP o := o || r || E'\n'; END LOOP; RETURN o; END $f$;
             CREATE TABLE hypo_t (id int, k int, v text, ts timestamptz, tags int[], p point);
             INSERT INTO hypo_t SELECT g, g % 1000, md5(g::text), now() - g * interval '1 s',
                    ARRAY[g % 7, g % 11], point(g % 100, g % 37) FROM generate_series(1, 20000) g;
             ANALYZE hypo_t;",
        );
        assert!(ok.is_ok());
    }

    fn plan(q: &str) -> String {
        Spi::get_one_with_args::<String>("SELECT hypo_test_plan($1)", &[q.into()])
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn state(q: &str) -> Option<String> {
        Spi::get_one_with_args::<String>("SELECT hypo_test_sqlstate($1)", &[q.into()])
            .ok()
            .flatten()
    }

    fn create(sql: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT index_name FROM capstone.hypo_index($1)",
            &[sql.into()],
        )
        .ok()
        .flatten()
        .unwrap_or_default()
    }

    #[pg_test]
    fn plain_explain_uses_a_hypothetical_btree() {
        setup();
        let q = "EXPLAIN SELECT * FROM hypo_t WHERE k = 42";
        assert!(plan(q).contains("Seq Scan"), "{}", plan(q));
        let name = create("CREATE INDEX ON hypo_t (k)");
        assert!(name.ends_with("btree_hypo_t_k"), "{name}");
        let p = plan(q);
        assert!(p.contains(&name), "{p}");
        // EXPLAIN ANALYZE runs the plan: it must never see the index
        let a = plan("EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM hypo_t WHERE k = 42");
        assert!(!a.contains(&name) && a.contains("Seq Scan"), "{a}");
        // nor does a plain query executing
        let n = Spi::get_one::<i64>("SELECT count(*) FROM hypo_t WHERE k = 42");
        assert_eq!(n, Ok(Some(20)));
        assert_eq!(
            Spi::get_one::<i32>("SELECT capstone.hypo_reset()"),
            Ok(Some(1))
        );
        assert!(plan(q).contains("Seq Scan"));
    }

    #[pg_test]
    fn every_index_kind_plans_without_error() {
        setup();
        let kinds = [
            (
                "CREATE INDEX ON hypo_t (k, id DESC NULLS LAST)",
                "EXPLAIN SELECT * FROM hypo_t WHERE k = 3 ORDER BY id DESC NULLS LAST",
            ),
            (
                "CREATE INDEX ON hypo_t (k) INCLUDE (v)",
                "EXPLAIN SELECT k, v FROM hypo_t WHERE k = 3",
            ),
            (
                "CREATE INDEX ON hypo_t (id) WHERE k = 7",
                "EXPLAIN SELECT * FROM hypo_t WHERE k = 7 AND id < 100",
            ),
            (
                "CREATE INDEX ON hypo_t (lower(v))",
                "EXPLAIN SELECT * FROM hypo_t WHERE lower(v) = 'abc'",
            ),
            (
                "CREATE INDEX ON hypo_t USING hash (v)",
                "EXPLAIN SELECT * FROM hypo_t WHERE v = 'abc'",
            ),
            (
                "CREATE INDEX ON hypo_t USING brin (ts)",
                "EXPLAIN SELECT * FROM hypo_t WHERE ts < now() - interval '5 hours'",
            ),
            (
                "CREATE INDEX ON hypo_t USING gin (tags)",
                "EXPLAIN SELECT * FROM hypo_t WHERE tags @> ARRAY[3]",
            ),
            (
                "CREATE INDEX ON hypo_t USING gist (p)",
                "EXPLAIN SELECT * FROM hypo_t WHERE p <@ box '((1,1),(2,2))'",
            ),
            (
                "CREATE INDEX ON hypo_t USING spgist (v)",
                "EXPLAIN SELECT * FROM hypo_t WHERE v = 'abc'",
            ),
        ];
        for (ddl, q) in kinds {
            let name = create(ddl);
            let p = plan(q);
            assert!(p.contains("cost="), "{ddl}: {p}");
            // the table at range-table index 2: the index's Vars are renumbered
            let j = plan(
                "EXPLAIN SELECT * FROM generate_series(1, 3) s, hypo_t b WHERE b.k = s \
                 AND b.id > 7 AND b.v = 'abc' AND b.tags @> ARRAY[3] AND b.ts < now()",
            );
            assert!(j.contains("cost="), "{ddl}: {j}");
            let sz = Spi::get_one_with_args::<i64>(
                "SELECT size_bytes FROM capstone.hypo_size((SELECT id FROM capstone.hypo_indexes() WHERE index_name = $1))",
                &[name.clone().into()],
            );
            assert!(matches!(sz, Ok(Some(b)) if b >= 8192), "{ddl}: {sz:?}");
            Spi::run("SELECT capstone.hypo_reset()").ok();
        }
    }

    #[pg_test]
    fn a_named_concurrent_index_keeps_its_name() {
        setup();
        let name = create("CREATE INDEX CONCURRENTLY IF NOT EXISTS hypo_k ON hypo_t (k);");
        assert_eq!(name, "hypo_k");
        assert!(plan("EXPLAIN SELECT * FROM hypo_t WHERE k = 1").contains("hypo_k"));
        let def = Spi::get_one::<String>("SELECT definition FROM capstone.hypo_indexes()");
        assert_eq!(
            def,
            Ok(Some(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS hypo_k ON hypo_t (k)".into()
            ))
        );
        assert_eq!(
            Spi::get_one::<bool>("SELECT capstone.hypo_drop(id) FROM capstone.hypo_indexes()"),
            Ok(Some(true))
        );
        assert_eq!(
            Spi::get_one::<bool>("SELECT capstone.hypo_drop(1)"),
            Ok(Some(false))
        );
    }

    #[pg_test]
    fn hiding_a_real_index_changes_only_plain_explain() {
        setup();
        assert!(Spi::run("CREATE INDEX hypo_t_k_real ON hypo_t (k)").is_ok());
        let q = "EXPLAIN SELECT * FROM hypo_t WHERE k = 42";
        assert!(plan(q).contains("hypo_t_k_real"));
        assert_eq!(
            Spi::get_one::<bool>("SELECT capstone.hypo_hide('hypo_t_k_real')"),
            Ok(Some(true))
        );
        assert_eq!(
            Spi::get_one::<bool>("SELECT capstone.hypo_hide('hypo_t_k_real')"),
            Ok(Some(false))
        );
        assert!(!plan(q).contains("hypo_t_k_real"), "{}", plan(q));
        let a = plan("EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM hypo_t WHERE k = 42");
        assert!(a.contains("hypo_t_k_real"), "{a}");
        assert_eq!(
            Spi::get_one::<bool>("SELECT capstone.hypo_unhide('hypo_t_k_real')"),
            Ok(Some(true))
        );
        assert!(plan(q).contains("hypo_t_k_real"));
    }

    #[pg_test]
    fn bad_input_gets_coded_errors() {
        setup();
        assert!(Spi::run("CREATE VIEW hypo_v AS SELECT * FROM hypo_t").is_ok());
        let cases = [
            ("SELECT capstone.hypo_index(NULL)", "22004"),
            ("SELECT capstone.hypo_index('')", "42601"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (k); CREATE INDEX ON hypo_t (id)')", "42601"),
            ("SELECT capstone.hypo_index('CREATE INDEXX ON hypo_t (k)')", "42601"),
            ("SELECT capstone.hypo_index('SELECT 1')", "0A000"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON nope (k)')", "42P01"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_v (k)')", "42809"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (nope)')", "42703"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t ((nope + 1))')", "42703"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t USING nope (k)')", "42704"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t USING heap (k)')", "42809"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t USING hash (k, id)')", "0A000"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t USING hash (k DESC)')", "0A000"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (k text_ops)')", "42804"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (k nope_ops)')", "42704"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (k) WITH (fillfactor = 5)')", "22023"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (k) WITH (bogus = 1)')", "22023"),
            ("SELECT capstone.hypo_index('CREATE INDEX ON hypo_t (ctid)')", "0A000"),
            ("SELECT * FROM capstone.hypo_size(1)", "42704"),
            ("SELECT capstone.hypo_hide('hypo_t')", "42809"),
            ("SELECT capstone.hypo_hide(NULL)", "22004"),
        ];
        for (q, code) in cases {
            assert_eq!(state(q).as_deref(), Some(code), "{q}");
        }
    }
}
