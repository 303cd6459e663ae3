-- A subscription (superuser-only before PostgreSQL 16) to a publication in another database of
-- the same server, created without connecting (connect = false), so no slot exists yet; the
-- subscription still names its slot. A database holding a subscription cannot be dropped
-- until the subscription is detached from its slot.
-- Needs a superuser to back up (pg_dump skips subscriptions otherwise) and to load.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -v socket=DIR -v port=PORT -f subscription.sql

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
\set pubdb :db '_pub'
CREATE DATABASE :"pubdb" OWNER :"app";
CREATE DATABASE :"db" OWNER :"app";
\connect :"pubdb"
SET ROLE :"app";
CREATE TABLE feed (id int PRIMARY KEY, item text);
CREATE PUBLICATION feed_pub FOR TABLE feed;
RESET ROLE;
\connect :"db"
SET ROLE :"app";
CREATE TABLE feed (id int PRIMARY KEY, item text);
INSERT INTO feed SELECT g, 'item ' || g FROM generate_series(1, 100) g;
RESET ROLE;
\set conninfo 'host=' :socket ' port=' :port ' dbname=' :pubdb ' user=postgres'
CREATE SUBSCRIPTION feed_sub CONNECTION :'conninfo' PUBLICATION feed_pub WITH (connect = false);
