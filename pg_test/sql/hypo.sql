-- Index advice gate: hypothetical indexes seen only by plain EXPLAIN in this session,
-- hiding real indexes, and bad input with SQLSTATEs. Tables made here, ANALYZEd.
CREATE EXTENSION capstone;
CREATE TABLE hypo_g (id int PRIMARY KEY, k int, v text, ts timestamptz, tags int[], p point);
INSERT INTO hypo_g SELECT g, g % 1000, md5(g::text), '2026-01-01'::timestamptz + g * interval '1 min',
       ARRAY[g % 7, g % 11], point(g % 100, g % 37) FROM generate_series(1, 50000) g;
CREATE VIEW hypo_gv AS SELECT * FROM hypo_g;
ANALYZE hypo_g;

-- no index on k: a sequential scan
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE k = 42;
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g (k)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE k = 42;
-- EXPLAIN ANALYZE and real execution never see it
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM hypo_g WHERE k = 42;
SELECT count(*) FROM hypo_g WHERE k = 42;
SELECT size_bytes, size_pretty, estimated_rows FROM capstone.hypo_size((SELECT id FROM capstone.hypo_indexes()));
SELECT capstone.hypo_reset();

-- every index kind plans (and a join puts the table at range-table index 2)
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g (k, id DESC NULLS LAST)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE k = 3 ORDER BY id DESC NULLS LAST LIMIT 5;
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g (k) INCLUDE (v)');
EXPLAIN (COSTS OFF) SELECT k, v FROM hypo_g WHERE k = 3;
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g (ts) WHERE k = 7');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE k = 7 AND ts < '2026-01-02';
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g (lower(v))');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE lower(v) = 'abc';
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g USING hash (v)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE v = 'abc';
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g USING brin (ts)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE ts < '2026-01-02';
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g USING gin (tags)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE tags @> ARRAY[3, 5];
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g USING gist (p)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE p <@ box '((1,1),(2,2))';
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g USING spgist (v)');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE v = 'abc';
SELECT capstone.hypo_reset();
SELECT index_name FROM capstone.hypo_index('CREATE INDEX ON hypo_g (k)');
EXPLAIN (COSTS OFF) SELECT * FROM generate_series(1, 3) s JOIN hypo_g g ON g.k = s;
SELECT capstone.hypo_reset();

-- a name, CONCURRENTLY and IF NOT EXISTS are accepted
SELECT index_name FROM capstone.hypo_index('CREATE INDEX CONCURRENTLY IF NOT EXISTS hypo_g_k ON hypo_g (k);');
SELECT index_name, table_name, access_method, definition FROM capstone.hypo_indexes();
SELECT capstone.hypo_drop(id) FROM capstone.hypo_indexes();
SELECT capstone.hypo_drop(1);

-- hiding a real index: "can I drop it?"
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE id = 42;
SELECT capstone.hypo_hide('hypo_g_pkey');
EXPLAIN (COSTS OFF) SELECT * FROM hypo_g WHERE id = 42;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM hypo_g WHERE id = 42;
SELECT capstone.hypo_unhide('hypo_g_pkey');
SELECT capstone.hypo_unhide('hypo_g_pkey');

-- bad input, each with its SQLSTATE
\set VERBOSITY sqlstate
SELECT capstone.hypo_index(NULL);
SELECT capstone.hypo_index('');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_g (k); CREATE INDEX ON hypo_g (id)');
SELECT capstone.hypo_index('CREATE INDEXX ON hypo_g (k)');
SELECT capstone.hypo_index('SELECT 1');
SELECT capstone.hypo_index('CREATE INDEX ON nope (k)');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_gv (k)');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_g (nope)');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_g USING nope (k)');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_g USING hash (k, id)');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_g (k) WITH (fillfactor = 5)');
SELECT * FROM capstone.hypo_size(1);
SELECT capstone.hypo_hide('hypo_g');
\set VERBOSITY default
SELECT capstone.hypo_index('CREATE INDEX ON hypo_gv (k)');
SELECT capstone.hypo_index('CREATE INDEX ON hypo_g (nope)');
