-- A big catalog of large objects: 20,000 of them, owned by the application role, each a few
-- bytes. Restoring their definitions in one transaction takes a lock per object, more than the
-- server's lock table holds with the default max_locks_per_transaction (64).
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD [-v count=N] -f big_large_objects.sql

\if :{?count}
\else
\set count 20000
\endif
CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE TABLE documents (id int PRIMARY KEY, blob oid NOT NULL);
INSERT INTO documents SELECT g, lo_from_bytea(0, convert_to('document ' || g, 'UTF8')) FROM generate_series(1, :count) g;
RESET ROLE;
