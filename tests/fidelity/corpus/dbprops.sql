-- Database-level properties: a default tablespace, a connection limit, a comment, settings
-- for the database and for a role in the database, and CONNECT granted to a reporting role.
-- The tablespace is created by the superuser in the directory :tsdir (empty, owned by the
-- server's OS user).
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -v tsdir=DIR -f dbprops.sql

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
\set ts :db '_space'
CREATE TABLESPACE :"ts" OWNER :"app" LOCATION :'tsdir';
CREATE DATABASE :"db" OWNER :"app" TABLESPACE :"ts" CONNECTION LIMIT 7;
COMMENT ON DATABASE :"db" IS 'the shop''s database';
ALTER DATABASE :"db" SET work_mem = '12MB';
ALTER DATABASE :"db" SET statement_timeout = '5min';
ALTER ROLE :"ro" IN DATABASE :"db" SET default_transaction_read_only = on;
\connect :"db"
SET ROLE :"app";
GRANT CONNECT ON DATABASE :"db" TO :"ro";
CREATE TABLE settings_probe (id int PRIMARY KEY, v text);
INSERT INTO settings_probe SELECT g, 'v' || g FROM generate_series(1, 50) g;
RESET ROLE;
