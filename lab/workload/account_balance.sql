-- An account balance from the ledger: the sum of its postings.
-- Served by postings_account_idx (tenant_id, account_id) INCLUDE (amount_cents), index-only.
\set tid random_zipfian(1, :ntenants, 1.1)
\set which random(0, 1)
SELECT CASE WHEN :which = 0 THEN account_cash ELSE account_revenue END AS acct
  FROM shop.lab_tenant_ranges WHERE tenant_id = :tid \gset
SELECT sum(amount_cents) AS balance_cents
  FROM shop.postings
 WHERE tenant_id = :tid AND account_id = :acct;
