-- A database with the ICU locale provider and a non-default ICU locale (Swedish: 'ä' and 'ö'
-- sort after 'z', and case is ignored at the first level), with an index whose order depends on
-- it. Restored with the libc provider, the sort order changes.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f icu.sql   (PostgreSQL 15 or later)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'sv-SE' LOCALE 'C.UTF-8';
\connect :"db"
SET ROLE :"app";
CREATE TABLE words (w text PRIMARY KEY);
INSERT INTO words VALUES ('apa'), ('Bil'), ('öl'), ('zebra'), ('Ärta'), ('åsna'), ('cykel'), ('Östen');
CREATE TABLE words_ordered AS SELECT row_number() OVER (ORDER BY w) AS pos, w FROM words;
RESET ROLE;
