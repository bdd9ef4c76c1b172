-- Shard or not: the key ranking on the lab, the plan it maps to, the refusal to
-- guess without statistics, and bad input with its SQLSTATE. Only ranks, names and
-- booleans are printed: shares depend on ANALYZE's random sample.
CREATE EXTENSION capstone;
SELECT count(*) AS tables_loaded
  FROM capstone.lab_install(scale => 0.05, seed => 42, anchor => '2026-06-01 00:00+00');

-- the ranking: tenant_id first, the whale tenant 1 named hot, reference tables listed
SELECT rank, key_column, key_type, cardinality,
       'orders' = ANY (tables) AND 'order_lines' = ANY (tables) AND 'postings' = ANY (tables) AS carried_by_the_big_tables,
       reference_tables,
       local_tables,
       top_value,
       hot_values[1] LIKE '1 (%' AS tenant_1_is_the_hottest_key,
       cardinality(hot_values) >= 3 AS several_hot_keys,
       cross_shard_joins = '{}' AS every_join_stays_on_one_shard,
       cardinality(colocated_joins) AS local_joins,
       shards,
       hottest_shard_share[5] >= top_value_share AS whale_floors_the_hottest_shard,
       hottest_shard_share[1] > hottest_shard_share[5] AS more_shards_less_hot,
       score > 75 AS score_above_75,
       reasoning LIKE 'tenant_id: carried by 11 of 12 tables%' AS reasoning_names_the_tables
  FROM capstone.shard_advice('shop')
 WHERE rank = 1;
-- every other candidate scores lower, and the top candidates come in rank order
SELECT count(*) AS candidates, bool_and(rank = 1 OR key_column <> 'tenant_id') AS tenant_id_only_once,
       bool_and(score <= (SELECT score FROM capstone.shard_advice('shop') WHERE rank = 1)) AS first_is_best
  FROM capstone.shard_advice('shop', top_n => 100);
-- shares read as fractions to 3 decimals (a tenth of a percent), the score to 1
SELECT bool_and(coalesce(top_value_share = round(top_value_share::numeric, 3)::float8, true)
                AND null_share = round(null_share::numeric, 3)::float8
                AND score = round(score::numeric, 1)::float8
                AND (SELECT bool_and(h = round(h::numeric, 3)::float8) FROM unnest(hottest_shard_share) h)) AS rounded,
       bool_and(rank = ordinal) AS best_first
  FROM capstone.shard_advice('shop', top_n => 100) WITH ORDINALITY AS a(rank, key_column, key_type, tables, reference_tables, local_tables,
       cardinality, top_value, top_value_share, hot_values, null_share, workload_routable_share, shards, hottest_shard_share,
       colocated_joins, cross_shard_joins, fan_out_queries, score, reasoning, evidence_id, ordinal);
-- order_id balances perfectly but leaves customers and postings behind
SELECT key_column, rank > 1 AS ranked_below_tenant_id, hot_values = '{}' AS no_hot_keys,
       'postings' = ANY (local_tables) AS postings_cannot_follow,
       cardinality(cross_shard_joins) > 0 AS has_cross_shard_joins
  FROM capstone.shard_advice('shop', top_n => 100) WHERE key_column = 'order_id';
-- the ranking is stored as evidence
SELECT label, payload ? 'chart' AS has_chart, payload->>'verdict' LIKE 'shard key tenant_id%' AS verdict
  FROM capstone.evidence WHERE gate = 'sharding' ORDER BY id LIMIT 1;

-- the plan: reference tables first, distributed tables parents first, the whale isolated
SELECT step, action, object, ddl
  FROM capstone.shard_plan('shop')
 WHERE action IN ('shard count', 'reference table', 'distributed table', 'isolate hot key', 'move hot shard')
 ORDER BY step;
SELECT array_agg(DISTINCT action ORDER BY action) AS actions FROM capstone.shard_plan('shop', shards => 8);
-- a named key: order_id must add itself to the tables that lack it
SELECT action, object FROM capstone.shard_plan('shop', 'order_id', 16)
 WHERE action IN ('add the key', 'cross-shard join') ORDER BY step;

-- the workload from pg_stat_statements: routed by key vs fanned out to every shard
CREATE EXTENSION pg_stat_statements;
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
SELECT count(*) > 0 AS routed FROM shop.orders WHERE tenant_id = 3;
SELECT count(*) > 0 AS routed FROM shop.orders WHERE tenant_id = 4;
SELECT count(*) > 0 AS routed FROM shop.orders WHERE tenant_id = 5;
SELECT count(*) > 0 AS fans_out FROM shop.orders WHERE created_at >= '2026-05-01';
SELECT round(workload_routable_share::numeric, 2) AS routable_share,
       cardinality(fan_out_queries) AS fan_out_queries,
       fan_out_queries[1] LIKE '1 call, % ms: SELECT count(*) > $1 AS fans_out FROM shop.orders WHERE created_at >= $2' AS names_the_fan_out
  FROM capstone.shard_advice('shop') WHERE rank = 1;
SELECT action, object LIKE 'SELECT count(*) > $1 AS fans_out%' AS the_global_query
  FROM capstone.shard_plan('shop') WHERE action = 'fan-out query';

-- no statistics: refuse to guess, say what to ANALYZE (55000)
CREATE SCHEMA bare;
CREATE TABLE bare.accounts (tenant_id int NOT NULL, account_id int NOT NULL, PRIMARY KEY (tenant_id, account_id))
  WITH (autovacuum_enabled = off);
CREATE TABLE bare.entries (tenant_id int NOT NULL, account_id int NOT NULL, amount int,
                           FOREIGN KEY (tenant_id, account_id) REFERENCES bare.accounts)
  WITH (autovacuum_enabled = off);
INSERT INTO bare.accounts SELECT g % 7, g FROM generate_series(1, 5000) g;
INSERT INTO bare.entries SELECT g % 7, 7 * (g % 700) + g % 7, g FROM generate_series(1, 20000) g
 WHERE 7 * (g % 700) + g % 7 BETWEEN 1 AND 5000;
SELECT * FROM capstone.shard_advice('bare');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_plan('bare');
\echo :LAST_ERROR_SQLSTATE
ANALYZE bare.accounts, bare.entries;
SELECT rank, key_column, tables, cross_shard_joins FROM capstone.shard_advice('bare') WHERE rank = 1;
-- a schema without tables
CREATE SCHEMA hollow;
SELECT * FROM capstone.shard_advice('hollow');
\echo :LAST_ERROR_SQLSTATE

-- bad input
SELECT * FROM capstone.shard_advice('no_such_schema');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', shards => '{1,4}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', shards => '{4097}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', shards => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', shards => '{2,NULL}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', shards => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', top_n => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_advice('shop', top_n => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_plan('shop', 'no_such_column');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_plan('shop', shards => 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM capstone.shard_plan('no_such_schema');
\echo :LAST_ERROR_SQLSTATE
