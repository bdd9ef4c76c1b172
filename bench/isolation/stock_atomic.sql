-- stock decrement on one hot product, atomic UPDATE (the row lock is taken and released inside one statement)
UPDATE shop.stock SET on_hand = CASE WHEN on_hand > 0 THEN on_hand - 1 ELSE 1000 END, updated_at = now()
 WHERE tenant_id = :tid AND product_id = :pid;
