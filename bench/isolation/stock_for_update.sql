-- read-modify-write under SELECT ... FOR UPDATE at READ COMMITTED
BEGIN;
SELECT on_hand AS cur FROM shop.stock WHERE tenant_id = :tid AND product_id = :pid FOR UPDATE \gset
UPDATE shop.stock SET on_hand = CASE WHEN :cur > 0 THEN :cur - 1 ELSE 1000 END, updated_at = now()
 WHERE tenant_id = :tid AND product_id = :pid;
END;
