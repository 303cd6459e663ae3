-- Trusted extensions created by the application role itself (no superuser involved): their
-- owner is the application role, and the application relies on it (ALTER EXTENSION ... UPDATE,
-- dropping its objects are "must be owner of extension").
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f app_extensions.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE TABLE secrets (id int PRIMARY KEY, name citext NOT NULL, tags hstore, digest bytea);
INSERT INTO secrets SELECT g, 'Name' || g, hstore('k', g::text), digest('v' || g, 'sha256') FROM generate_series(1, 100) g;
RESET ROLE;
