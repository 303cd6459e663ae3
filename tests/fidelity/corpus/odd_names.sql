-- Identifiers that break line- and quote-based tools: a table name with a newline, names with
-- double and single quotes, a backslash, spaces, a dot, upper case, a name that is a keyword,
-- a 63-byte name, and a schema with a quote, each with rows.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f odd_names.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE TABLE "line
break" (id int PRIMARY KEY, "col
umn" text);
INSERT INTO "line
break" SELECT g, 'row ' || g FROM generate_series(1, 40) g;
CREATE TABLE "say ""hi""" (id int PRIMARY KEY, "it's" text);
INSERT INTO "say ""hi""" SELECT g, 'quote '' ' || g FROM generate_series(1, 30) g;
CREATE TABLE "back\slash" (id int);
INSERT INTO "back\slash" SELECT generate_series(1, 20);
CREATE TABLE "dotted.name" ("Select" int, "from" text);
INSERT INTO "dotted.name" SELECT g, 'x' FROM generate_series(1, 10) g;
CREATE TABLE "UPPER case" (id int);
INSERT INTO "UPPER case" SELECT generate_series(1, 5);
CREATE TABLE "t23456789_123456789_123456789_123456789_123456789_123456789_123" (id int);
INSERT INTO "t23456789_123456789_123456789_123456789_123456789_123456789_123" SELECT generate_series(1, 3);
CREATE SCHEMA "O'Brien ""s""";
CREATE TABLE "O'Brien ""s"""."tab	with tab" (id int);
INSERT INTO "O'Brien ""s"""."tab	with tab" SELECT generate_series(1, 7);
CREATE VIEW "view
with newline" AS SELECT * FROM "line
break";
RESET ROLE;
