//! #[pg_test]s for the index advisor: what the analyzer reads from a statement, and
//! index_advice / index_drop_advice on a small schema with a real pg_stat_statements.

#[pgrx::pg_schema]
mod tests {
    use crate::advice::analyze;
    use crate::advice::candidates::Use;
    use pgrx::prelude::*;

    fn schema() -> spi::Result<()> {
        Spi::run(
            "CREATE TABLE adv_t (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL, c timestamptz, d text);
             INSERT INTO adv_t SELECT g, g % 500, g % 7, now() - g * interval '1 s', md5(g::text)
               FROM generate_series(1, 20000) g;
             CREATE TABLE adv_u (id bigint PRIMARY KEY, t_id bigint NOT NULL, q int);
             INSERT INTO adv_u SELECT g, g % 20000 + 1, g % 3 FROM generate_series(1, 20000) g;
             ANALYZE adv_t, adv_u;",
        )
    }

    #[pg_test]
    fn the_analyzer_reads_equality_range_sort_and_join_columns() -> spi::Result<()> {
        schema()?;
        let a = analyze::analyze(
            "SELECT t.id, t.d FROM adv_t t JOIN adv_u u ON u.t_id = t.id
              WHERE t.a = $1 AND t.c > $2 AND t.d IS NOT NULL ORDER BY t.c DESC LIMIT 5",
        );
        assert!(a.is_some());
        let Some(a) = a else { return Ok(()) };
        assert_eq!(a.nparams, 2);
        assert_eq!(a.relids.len(), 2);
        let t = a.shapes.iter().find(|s| s.table == "public.adv_t");
        assert!(t.is_some());
        let Some(t) = t else { return Ok(()) };
        let has = |name: &str, kind: Use| t.uses.iter().any(|u| u.name == name && u.kind == kind);
        assert!(has("a", Use::Eq));
        assert!(has("id", Use::Eq)); // the join key
        assert!(has("c", Use::Range));
        assert!(has("c", Use::Sort { desc: true }));
        assert_eq!(t.const_preds.len(), 1);
        assert_eq!(t.const_preds[0].text, "d IS NOT NULL");
        let u = a.shapes.iter().find(|s| s.table == "public.adv_u");
        assert!(u.is_some_and(|u| u.uses.iter().any(|x| x.name == "t_id" && x.kind == Use::Eq)));
        // a utility statement is not a workload statement
        assert!(analyze::analyze("VACUUM adv_t").is_none());
        Ok(())
    }

    #[pg_test]
    fn index_advice_finds_the_missing_index_and_stores_it() -> spi::Result<()> {
        schema()?;
        Spi::run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        Spi::run("SET pg_stat_statements.track = 'all'")?;
        Spi::run("SELECT pg_stat_statements_reset()")?;
        for v in [3, 4, 5] {
            Spi::run(&format!("SELECT count(*) FROM adv_t WHERE a = {v}"))?;
        }
        let create = Spi::get_one::<String>(
            "SELECT create_index FROM capstone.index_advice() WHERE table_name = 'public.adv_t' ORDER BY savings_pct DESC LIMIT 1",
        )?;
        assert_eq!(
            create.as_deref(),
            Some("CREATE INDEX CONCURRENTLY ON public.adv_t (a)")
        );
        let stored = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.evidence WHERE gate = 'index' AND label = 'index_advice'
                AND payload->>'create_index' = 'CREATE INDEX CONCURRENTLY ON public.adv_t (a)'",
        )?;
        assert_eq!(stored, Some(1));
        // an existing index with that prefix serves it: no advice any more
        Spi::run("CREATE INDEX adv_t_a_b ON adv_t (a, b)")?;
        let again = Spi::get_one::<i64>(
            "SELECT count(*) FROM capstone.index_advice() WHERE table_name = 'public.adv_t'",
        )?;
        assert_eq!(again, Some(0));
        Ok(())
    }

    #[pg_test]
    fn index_drop_advice_names_a_prefix_and_never_the_primary_key() -> spi::Result<()> {
        schema()?;
        Spi::run("CREATE INDEX adv_t_a ON adv_t (a); CREATE INDEX adv_t_a_b ON adv_t (a, b)")?;
        let reasons = Spi::get_one::<String>(
            "SELECT string_agg(index_name || ':' || reason, ',' ORDER BY index_name)
               FROM capstone.index_drop_advice() WHERE table_name = 'public.adv_t'",
        )?;
        let reasons = reasons.unwrap_or_default();
        assert!(reasons.contains("public.adv_t_a:prefix"), "{reasons}");
        assert!(!reasons.contains("adv_t_pkey"), "{reasons}");
        Ok(())
    }
}
