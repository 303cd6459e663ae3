-- Foreign keys a parallel load adds on several connections at once: a chain of tables each
-- referencing the one before (keys on neighbouring tables share a table), two tables that
-- reference each other (added at once, the two keys would wait for each other), a table with
-- several keys, a self-reference, composite, deferrable, NOT VALID and cascading keys, keys in
-- a schema with an odd name, keys to and from a partitioned table, comments on keys, a
-- constraint trigger and a trigger between them, and grants. Owned by the application role.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -f foreign_keys.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";

DO $$
BEGIN
  FOR i IN 1..24 LOOP
    EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, ref_id int, note text)', 'chain_' || i);
    EXECUTE format('INSERT INTO %I SELECT g, 1 + g %% 50, md5(g::text) FROM generate_series(1, 200) g',
      'chain_' || i);
    IF i > 1 THEN
      EXECUTE format('ALTER TABLE %I ADD FOREIGN KEY (ref_id) REFERENCES %I (id)',
        'chain_' || i, 'chain_' || (i - 1));
    END IF;
  END LOOP;
END
$$;

-- Two tables that reference each other, with deferrable keys.
CREATE TABLE husband (id int PRIMARY KEY, wife_id int NOT NULL);
CREATE TABLE wife (id int PRIMARY KEY, husband_id int NOT NULL);
INSERT INTO husband SELECT g, g FROM generate_series(1, 100) g;
INSERT INTO wife SELECT g, g FROM generate_series(1, 100) g;
ALTER TABLE husband ADD CONSTRAINT husband_wife FOREIGN KEY (wife_id) REFERENCES wife (id)
    DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE wife ADD CONSTRAINT wife_husband FOREIGN KEY (husband_id) REFERENCES husband (id)
    DEFERRABLE;
COMMENT ON CONSTRAINT husband_wife ON husband IS 'the one side';

-- Several keys on one table, a self-reference, a composite key, a cascading and a NOT VALID one.
CREATE TABLE employee (id int PRIMARY KEY, boss_id int REFERENCES employee (id), dept text);
INSERT INTO employee VALUES (1, NULL, 'a'), (2, 1, 'a'), (3, 1, 'b'), (4, 3, 'b');
CREATE TABLE dept (code text, site int, PRIMARY KEY (code, site));
INSERT INTO dept VALUES ('a', 1), ('b', 1), ('b', 2);
CREATE TABLE assignment (
    id int PRIMARY KEY,
    employee_id int NOT NULL REFERENCES employee (id) ON DELETE CASCADE,
    chain_id int REFERENCES chain_24 (id) ON UPDATE CASCADE,
    dept text,
    site int,
    FOREIGN KEY (dept, site) REFERENCES dept (code, site) MATCH FULL
);
INSERT INTO assignment SELECT g, 1 + g % 4, 1 + g % 200, 'b', 1 + g % 2 FROM generate_series(1, 300) g;
INSERT INTO assignment VALUES (1000, 1, NULL, NULL, NULL);
CREATE TABLE legacy (id int, employee_id int);
INSERT INTO legacy VALUES (1, 99);
ALTER TABLE legacy ADD CONSTRAINT legacy_employee FOREIGN KEY (employee_id) REFERENCES employee (id)
    NOT VALID;
COMMENT ON CONSTRAINT legacy_employee ON legacy IS 'kept unchecked';

-- An odd schema and names.
CREATE SCHEMA "Keys ""and"" (refs)";
CREATE TABLE "Keys ""and"" (refs)"."Parent.Table" ("Id (1)" int PRIMARY KEY);
CREATE TABLE "Keys ""and"" (refs)"."child REFERENCES" (
    id int PRIMARY KEY,
    "REFERENCES x" int CONSTRAINT "fk REFERENCES (y)" REFERENCES "Keys ""and"" (refs)"."Parent.Table" ("Id (1)")
);
INSERT INTO "Keys ""and"" (refs)"."Parent.Table" SELECT generate_series(1, 10);
INSERT INTO "Keys ""and"" (refs)"."child REFERENCES" SELECT g, 1 + g % 10 FROM generate_series(1, 30) g;

-- Keys to and from a partitioned table.
CREATE TABLE reading (id int, at date NOT NULL, chain_id int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE reading_2025 PARTITION OF reading FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE reading_2026 PARTITION OF reading FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO reading SELECT g, date '2025-06-01' + g, 1 + g % 200 FROM generate_series(1, 300) g;
ALTER TABLE reading ADD FOREIGN KEY (chain_id) REFERENCES chain_12 (id);
CREATE TABLE reading_note (id int PRIMARY KEY, reading_id int, at date,
    FOREIGN KEY (reading_id, at) REFERENCES reading (id, at));
INSERT INTO reading_note SELECT g, g, date '2025-06-01' + g FROM generate_series(1, 50) g;

-- Triggers between the keys, and grants.
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER chain_5_touch BEFORE UPDATE ON chain_5 FOR EACH ROW EXECUTE FUNCTION touch();
CREATE CONSTRAINT TRIGGER assignment_check AFTER INSERT ON assignment FROM employee
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION touch();
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"ro";
GRANT REFERENCES (id) ON chain_3 TO :"ro";
