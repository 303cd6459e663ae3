-- Contrib extensions created by a superuser, as a DBA installs them, used by the application's
-- tables: pgcrypto, hstore, citext, pg_trgm (a trigram index), ltree, btree_gist (an exclusion
-- constraint), uuid-ossp in its own schema, and the untrusted postgres_fdw with a foreign
-- server, a user mapping and a foreign table owned by the application role.
-- Needs a superuser to load (postgres_fdw is not a trusted extension).
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -f contrib.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
CREATE SCHEMA ext AUTHORIZATION :"app";
CREATE EXTENSION pgcrypto WITH SCHEMA public;
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE EXTENSION pg_trgm;
CREATE EXTENSION ltree;
CREATE EXTENSION btree_gist;
CREATE EXTENSION "uuid-ossp" WITH SCHEMA ext;
CREATE EXTENSION postgres_fdw;
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO :"app";
SET ROLE :"app";

CREATE TABLE accounts (
    id uuid PRIMARY KEY DEFAULT ext.uuid_generate_v5(ext.uuid_ns_url(), 'x'),
    email citext NOT NULL UNIQUE,
    password_hash text NOT NULL,
    attrs hstore,
    path ltree
);
CREATE INDEX accounts_path ON accounts USING gist (path);
CREATE INDEX accounts_email_trgm ON accounts USING gin ((email::text) gin_trgm_ops);
CREATE TABLE bookings (
    room int NOT NULL,
    during tsrange NOT NULL,
    EXCLUDE USING gist (room WITH =, during WITH &&)
);
INSERT INTO accounts (id, email, password_hash, attrs, path)
    SELECT ext.uuid_generate_v5(ext.uuid_ns_url(), 'user' || g), 'User' || g || '@Example.com',
           crypt('pw' || g, '$1$saltsalt'), hstore(ARRAY['plan', 'seats'], ARRAY[(ARRAY['free', 'pro'])[1 + g % 2], (g % 10)::text]),
           ('top.' || (ARRAY['eng', 'ops', 'sales'])[1 + g % 3] || '.team' || g % 7)::ltree
    FROM generate_series(1, 500) g;
INSERT INTO bookings SELECT 1 + g % 10, tsrange(timestamp '2024-01-01' + g * interval '1 day', timestamp '2024-01-01' + g * interval '1 day' + interval '3 hours') FROM generate_series(1, 300) g;
CREATE FUNCTION check_password(p_email citext, p_password text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT password_hash = crypt(p_password, password_hash) FROM accounts WHERE email = p_email
$$;

CREATE SERVER archive FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'archive', host '/nonexistent');
CREATE USER MAPPING FOR :"app" SERVER archive OPTIONS (user 'reader');
CREATE FOREIGN TABLE archived_accounts (id uuid, email text) SERVER archive OPTIONS (schema_name 'public', table_name 'accounts');
GRANT SELECT ON accounts TO :"ro";
RESET ROLE;
