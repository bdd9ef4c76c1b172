-- bench/load.sh: capstone.bloat_report on the lab schema, default (fast, sampled) mode.
SELECT * FROM capstone.bloat_report(schema_name => 'shop');
