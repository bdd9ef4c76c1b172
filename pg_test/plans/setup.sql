-- The schema the corpus plans are captured on: deterministic data (no random()), so the
-- same query gives the same row counts in every format and on every major.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS corpus CASCADE;
CREATE SCHEMA corpus;
SET search_path = corpus;
CREATE TABLE customers (id int PRIMARY KEY, tier int NOT NULL, region text NOT NULL);
INSERT INTO customers SELECT g, g % 5, 'r' || (g % 20) FROM generate_series(1, 10000) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                     amount numeric NOT NULL, a int NOT NULL, b int NOT NULL);
INSERT INTO orders SELECT g, 1 + (g * 7919) % 10000, (ARRAY['open','paid','shipped','refunded'])[1 + g % 4],
       (g * 37) % 1000, g % 100, g % 100 FROM generate_series(1, 200000) g;
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE TABLE events (id int, ts date NOT NULL, kind int) PARTITION BY RANGE (ts);
CREATE TABLE events_q1 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-04-01');
CREATE TABLE events_q2 PARTITION OF events FOR VALUES FROM ('2024-04-01') TO ('2024-07-01');
CREATE TABLE events_q3 PARTITION OF events FOR VALUES FROM ('2024-07-01') TO ('2024-10-01');
CREATE TABLE events_q4 PARTITION OF events FOR VALUES FROM ('2024-10-01') TO ('2025-01-01');
INSERT INTO events SELECT g, date '2024-01-01' + (g % 366), g % 7 FROM generate_series(1, 100000) g;
CREATE TABLE ios (id int, pad text);
INSERT INTO ios SELECT g, 'x' FROM generate_series(1, 100000) g;
CREATE INDEX ios_id_idx ON ios (id);
CREATE TABLE audit (id int, note text);
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER audit_touch BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_row();
VACUUM ANALYZE customers, orders, events;
-- ios is analyzed but never vacuumed: its visibility map stays empty (heap fetches)
ANALYZE ios;
