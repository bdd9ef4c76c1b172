-- bench/load.sh: capstone.xmin_holders() while other sessions hold snapshots.
SELECT * FROM capstone.xmin_holders();
