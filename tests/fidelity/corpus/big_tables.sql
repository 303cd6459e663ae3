-- A big catalog of tables: 3,000 tables, each with a serial key, a text column (so a TOAST
-- table and its index) and one row. Creating them in one transaction takes about five locks per
-- table, more than the server's lock table holds with the default max_locks_per_transaction
-- (64); so this file commits every 200 tables, and a load in one transaction fails.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD [-v count=N] -f big_tables.sql

\if :{?count}
\else
\set count 3000
\endif
CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
SELECT set_config('fidelity.count', :'count', false) AS count \gset
DO $$
BEGIN
    FOR i IN 1..current_setting('fidelity.count')::int LOOP
        EXECUTE format('CREATE TABLE t_%s (id serial PRIMARY KEY, v text)', i);
        EXECUTE format('INSERT INTO t_%s (v) VALUES (%L)', i, 'row of table ' || i);
        IF i % 200 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END $$;
RESET ROLE;
