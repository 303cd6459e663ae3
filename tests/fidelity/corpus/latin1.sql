-- A LATIN1 database (the encoding of many old installations) with a non-ASCII table name, column
-- name and data: table "café" with column "crème", a schema "société", and text in every
-- Latin-1 letter. This file is UTF-8; the server converts.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f latin1.sql   (as a superuser, client encoding UTF8)

SET client_encoding = 'UTF8';
CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C';
\connect :"db"
SET client_encoding = 'UTF8';
SET ROLE :"app";
CREATE SCHEMA "société";
CREATE TABLE "café" (id int PRIMARY KEY, "crème" text NOT NULL, prix numeric(6,2));
INSERT INTO "café" SELECT g, (ARRAY['crème brûlée', 'café au lait', 'garçon', 'Ålborg øl', 'naïve façade'])[1 + g % 5] || ' ' || g, g * 1.1 FROM generate_series(1, 300) g;
CREATE TABLE "société"."employé" (nom text PRIMARY KEY, "âge" int);
INSERT INTO "société"."employé" VALUES ('Zoë', 31), ('Jürgen', 45), ('Ðorðe', 28), ('ÿ ¿¡ «»', 0);
CREATE VIEW "société"."vue_café" AS SELECT id, "crème" FROM "café" WHERE prix > 10;
COMMENT ON TABLE "café" IS 'le café du coin';
RESET ROLE;
