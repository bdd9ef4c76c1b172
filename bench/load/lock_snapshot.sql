-- bench/load.sh: capstone.lock_snapshot() while the write workload takes row locks.
SELECT * FROM capstone.lock_snapshot();
