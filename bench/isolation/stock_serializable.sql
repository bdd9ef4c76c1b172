-- read-modify-write at SERIALIZABLE; pgbench retries serialization failures (--max-tries)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT on_hand AS cur FROM shop.stock WHERE tenant_id = :tid AND product_id = :pid \gset
UPDATE shop.stock SET on_hand = CASE WHEN :cur > 0 THEN :cur - 1 ELSE 1000 END, updated_at = now()
 WHERE tenant_id = :tid AND product_id = :pid;
END;
