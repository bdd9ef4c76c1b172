-- Lost update by hand, session B (see lost_update_session_a.sql).
\set ON_ERROR_STOP 0
\prompt 'B1: wait until A has read (A1 done), then press Enter ' x
BEGIN ISOLATION LEVEL READ COMMITTED;
\prompt 'B2: press Enter to read ' x
SELECT on_hand AS b_read FROM shop.stock WHERE tenant_id = 1 AND product_id = 1 \gset
\echo B read on_hand = :b_read
\prompt 'B3: after A has written (A2), press Enter to write: this waits for A to commit ' x
UPDATE shop.stock SET on_hand = :b_read - 1 WHERE tenant_id = 1 AND product_id = 1;
COMMIT;
\echo B committed. Both sessions subtracted 1 from 10; on_hand is 9, not 8: one update was lost.
\echo Re-run with REPEATABLE READ in both BEGIN lines: B's UPDATE then fails with 40001 instead.
