-- Many mid-sized tables for the restore benchmark: :tables tables of :rows rows each (default
-- 200 x 20 000, about 4 M rows, ~600 MB with indexes), each with a primary key, two secondary
-- indexes and a foreign key to the table before it, so that a load has many COPY blocks and a
-- post-data section of ~800 independent builds and ~200 foreign keys.
--   psql -v tables=200 -v rows=20000 -f bench/many_tables.sql
\if :{?tables}
\else
\set tables 200
\endif
\if :{?rows}
\else
\set rows 20000
\endif
SET bench.tables = :'tables';
SET bench.rows = :'rows';
DO $$
DECLARE
  n int := current_setting('bench.tables')::int;
  r int := current_setting('bench.rows')::int;
  t text;
BEGIN
  FOR i IN 1..n LOOP
    t := format('t%s', lpad(i::text, 3, '0'));
    EXECUTE format('CREATE TABLE %I (id bigint NOT NULL, ref_id bigint, cat int NOT NULL, '
      'created timestamptz NOT NULL, name text NOT NULL, amount numeric(12,2))', t);
    EXECUTE format('INSERT INTO %I SELECT g, 1 + (g * 7919) %% %s, g %% 97, '
      'timestamptz ''2026-01-01'' + g * interval ''37 seconds'', '
      'md5(g::text) || '' '' || (g %% 1000)::text, round((g %% 100000) / 7.0, 2) '
      'FROM generate_series(1, %s) g', t, r, r);
    EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (id)', t);
    EXECUTE format('CREATE INDEX ON %I (cat, created)', t);
    EXECUTE format('CREATE INDEX ON %I (name)', t);
    IF i > 1 THEN
      EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (ref_id) REFERENCES %I (id)', t,
        format('t%s', lpad((i - 1)::text, 3, '0')));
    END IF;
  END LOOP;
END
$$;
