-- Large objects: a few, owned by the application role and by another role, with grants to a
-- read-only role and to the application (so that the application's backup can read them), a
-- comment, an empty one, a binary one, and a table that refers to them by oid.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v other=ROLE -v pw=PASSWORD -f large_objects.sql

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE ROLE :"other" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE TABLE attachments (id int PRIMARY KEY, name text NOT NULL, content oid NOT NULL);
INSERT INTO attachments VALUES
    (1, 'hello.txt', lo_from_bytea(0, convert_to('hello, large object', 'UTF8'))),
    (2, 'empty', lo_from_bytea(0, ''::bytea)),
    (3, 'random.bin', lo_from_bytea(0, (SELECT string_agg(decode(md5(g::text), 'hex'), ''::bytea) FROM generate_series(1, 20000) g)));
SELECT lo_create(424242);
SELECT lo_put(424242, 0, '\x00ff00ff'::bytea);
COMMENT ON LARGE OBJECT 424242 IS 'a large object with a chosen oid';
GRANT SELECT ON LARGE OBJECT 424242 TO :"ro";
GRANT SELECT, UPDATE ON LARGE OBJECT 424242 TO :"other";
RESET ROLE;
SET ROLE :"other";
SELECT lo_from_bytea(0, convert_to('owned by another role', 'UTF8')) AS other_lo \gset
GRANT SELECT ON LARGE OBJECT :other_lo TO :"app";
RESET ROLE;
SET ROLE :"app";
INSERT INTO attachments VALUES (4, 'other.txt', :other_lo);
RESET ROLE;
