-- An SQL_ASCII database (no encoding at all: the bytes are whatever the application sent) with
-- a table and a column whose names contain the byte 0xE9 (Latin-1 'é', not valid UTF-8), and
-- data with such bytes. The names are made with convert_from(..., 'SQL_ASCII'), which keeps the
-- bytes as they are.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f sql_ascii.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app" TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C';
\connect :"db"
SET client_encoding = 'SQL_ASCII';
SET ROLE :"app";
DO $$
DECLARE
    t text := convert_from('\x636166e9'::bytea, 'SQL_ASCII');        -- caf<E9>
    c text := convert_from('\x6372e86d65'::bytea, 'SQL_ASCII');      -- cr<E8>me
BEGIN
    EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, %I text NOT NULL)', t, c);
    EXECUTE format('INSERT INTO %I SELECT g, %L || g FROM generate_series(1, 200) g', t, convert_from('\x6ee9e920ff20', 'SQL_ASCII'));
END $$;
CREATE TABLE plain_ascii (id int PRIMARY KEY, raw text);
INSERT INTO plain_ascii SELECT g, convert_from(decode(lpad(to_hex(128 + g % 127), 2, '0'), 'hex'), 'SQL_ASCII') FROM generate_series(1, 100) g;
RESET ROLE;
