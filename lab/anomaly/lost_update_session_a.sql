-- Lost update by hand, session A. Open two psql sessions on the lab database:
--   psql ... -f lab/anomaly/lost_update_session_a.sql     (this file)
--   psql ... -f lab/anomaly/lost_update_session_b.sql
-- and press Enter in each when its prompt says so. The interleaving is the one
-- capstone.anomaly_demo('lost_update', 'read committed') drives automatically.
\set ON_ERROR_STOP 0
-- a demo row of its own: product 1 of tenant 1, reset to 10 units
UPDATE shop.stock SET on_hand = 10 WHERE tenant_id = 1 AND product_id = 1;
\prompt 'A1: start session B now, then press Enter here ' x
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT on_hand AS a_read FROM shop.stock WHERE tenant_id = 1 AND product_id = 1 \gset
\echo A read on_hand = :a_read
\prompt 'A2: now let B read (B2), then press Enter ' x
UPDATE shop.stock SET on_hand = :a_read - 1 WHERE tenant_id = 1 AND product_id = 1;
\prompt 'A3: now let B write (B3): it will wait for this transaction. Press Enter to COMMIT ' x
COMMIT;
\prompt 'A4: after B has committed, press Enter to see the result ' x
SELECT on_hand AS final, 8 AS expected_if_no_update_was_lost FROM shop.stock WHERE tenant_id = 1 AND product_id = 1;
