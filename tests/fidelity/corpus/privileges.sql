-- Privileges and comments: default privileges (for the application role, in a schema and
-- globally), table and column grants to other roles, a grant chain (the application grants WITH
-- GRANT OPTION to alice, alice grants on to bob: bob's privilege has alice as grantor), schema
-- and sequence and function grants, EXECUTE revoked from PUBLIC, objects owned by a group role
-- the application is a member of (the role membership the schema needs), and comments on
-- every kind of object.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v staff=ROLE -v alice=ROLE -v bob=ROLE -v pw=PASSWORD -f privileges.sql

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE ROLE :"staff" NOLOGIN;
CREATE ROLE :"alice" LOGIN PASSWORD :'pw';
CREATE ROLE :"bob" LOGIN PASSWORD :'pw';
GRANT :"staff" TO :"app";
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE SCHEMA reports;
COMMENT ON SCHEMA reports IS 'what the reporting role reads';
ALTER DEFAULT PRIVILEGES IN SCHEMA reports GRANT SELECT ON TABLES TO :"ro";
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO :"ro";
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA reports GRANT USAGE ON SEQUENCES TO :"alice";
CREATE TYPE status AS ENUM ('new', 'paid');
COMMENT ON TYPE status IS 'an order''s state';
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text, card_number text, status status);
COMMENT ON TABLE customers IS 'people who buy';
COMMENT ON COLUMN customers.card_number IS 'never shown to reports';
COMMENT ON CONSTRAINT customers_pkey ON customers IS 'the key';
CREATE INDEX customers_email ON customers (email);
COMMENT ON INDEX customers_email IS 'lookup by email';
COMMENT ON SEQUENCE customers_id_seq IS 'ids';
INSERT INTO customers (name, email, card_number, status) SELECT 'c' || g, 'c' || g || '@example.com', lpad(g::text, 16, '4'), 'new' FROM generate_series(1, 150) g;
CREATE TABLE reports.daily (day date PRIMARY KEY, revenue numeric);
INSERT INTO reports.daily SELECT date '2024-01-01' + g, g * 10 FROM generate_series(0, 99) g;
CREATE VIEW reports.customer_names AS SELECT id, name FROM customers;
COMMENT ON VIEW reports.customer_names IS 'no card numbers here';
CREATE FUNCTION reports.revenue_between(a date, b date) RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT sum(revenue) FROM reports.daily WHERE day BETWEEN a AND b
$$;
COMMENT ON FUNCTION reports.revenue_between(date, date) IS 'sum of daily revenue';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER customers_touch BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch();
COMMENT ON TRIGGER customers_touch ON customers IS 'does nothing, loudly';
GRANT USAGE ON SCHEMA reports TO :"ro", :"alice";
GRANT SELECT (id, name, email), UPDATE (email) ON customers TO :"ro";
GRANT SELECT, INSERT ON customers TO :"alice" WITH GRANT OPTION;
GRANT USAGE ON SEQUENCE customers_id_seq TO :"alice";
GRANT SELECT ON reports.customer_names TO :"bob";
GRANT USAGE, CREATE ON SCHEMA reports TO :"staff";
RESET ROLE;
SET ROLE :"alice";
GRANT SELECT ON customers TO :"bob";
RESET ROLE;
SET ROLE :"staff";
CREATE TABLE reports.staff_notes (id int PRIMARY KEY, note text);
INSERT INTO reports.staff_notes SELECT g, 'note ' || g FROM generate_series(1, 20) g;
GRANT SELECT ON reports.staff_notes TO :"app";
RESET ROLE;
