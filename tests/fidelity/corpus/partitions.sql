-- Partitioning and inheritance: range partitions with sub-partitions by list, a default
-- partition, hash partitions, partition indexes (a unique key and a plain index on the parent,
-- an index on one partition only), a foreign key referencing a partitioned table, a partition
-- with its own extra check, and classic inheritance with a child that adds columns and a
-- grandchild.
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f partitions.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE TABLE events (
    id bigint NOT NULL,
    at timestamptz NOT NULL,
    region text NOT NULL,
    payload jsonb,
    PRIMARY KEY (id, at, region)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2025-01-01 00:00+00')
    PARTITION BY LIST (region);
CREATE TABLE events_2024_eu PARTITION OF events_2024 FOR VALUES IN ('eu', 'uk');
CREATE TABLE events_2024_us PARTITION OF events_2024 FOR VALUES IN ('us');
CREATE TABLE events_2024_other PARTITION OF events_2024 DEFAULT;
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01 00:00+00') TO ('2026-01-01 00:00+00');
CREATE TABLE events_default PARTITION OF events DEFAULT;
ALTER TABLE events_2025 ADD CONSTRAINT events_2025_region CHECK (region <> '');
CREATE INDEX events_region_idx ON events (region, at);
CREATE INDEX events_2025_payload ON events_2025 USING gin (payload);
-- An index built on a partition first and attached to the parent's index.
CREATE INDEX events_payload_id ON ONLY events (((payload ->> 'id')));
CREATE INDEX events_2024_payload_id ON ONLY events_2024 (((payload ->> 'id')));
ALTER INDEX events_payload_id ATTACH PARTITION events_2024_payload_id;
CREATE INDEX events_2024_eu_payload_id ON events_2024_eu (((payload ->> 'id')));
CREATE INDEX events_2024_us_payload_id ON events_2024_us (((payload ->> 'id')));
CREATE INDEX events_2024_other_payload_id ON events_2024_other (((payload ->> 'id')));
ALTER INDEX events_2024_payload_id ATTACH PARTITION events_2024_eu_payload_id;
ALTER INDEX events_2024_payload_id ATTACH PARTITION events_2024_us_payload_id;
ALTER INDEX events_2024_payload_id ATTACH PARTITION events_2024_other_payload_id;
INSERT INTO events
    SELECT g, timestamptz '2024-01-01 00:00+00' + g * interval '97 minutes', (ARRAY['eu', 'uk', 'us', 'apac'])[1 + g % 4],
           jsonb_build_object('id', g, 'kind', g % 5)
    FROM generate_series(1, 12000) g;

CREATE TABLE users (id int NOT NULL, shard int NOT NULL, name text, PRIMARY KEY (id, shard)) PARTITION BY HASH (shard);
CREATE TABLE users_0 PARTITION OF users FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE users_1 PARTITION OF users FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE users_2 PARTITION OF users FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO users SELECT g, g % 17, 'user ' || g FROM generate_series(1, 3000) g;
CREATE TABLE sessions (
    id int PRIMARY KEY,
    user_id int NOT NULL,
    shard int NOT NULL,
    FOREIGN KEY (user_id, shard) REFERENCES users (id, shard)
);
INSERT INTO sessions SELECT g, g, g % 17 FROM generate_series(1, 1000) g;

CREATE TABLE vehicles (id int PRIMARY KEY, plate text NOT NULL, wheels int CHECK (wheels > 0));
CREATE TABLE trucks (payload_tons numeric NOT NULL) INHERITS (vehicles);
CREATE TABLE tankers (liquid text) INHERITS (trucks);
CREATE TABLE buses (seats int NOT NULL DEFAULT 40, CHECK (seats < 100)) INHERITS (vehicles);
ALTER TABLE trucks ADD PRIMARY KEY (id);
INSERT INTO vehicles SELECT g, 'CAR-' || g, 4 FROM generate_series(1, 100) g;
INSERT INTO trucks SELECT g, 'TRK-' || g, 6 + g % 3, g * 0.5 FROM generate_series(101, 150) g;
INSERT INTO tankers SELECT g, 'TNK-' || g, 18, 30, (ARRAY['milk', 'fuel'])[1 + g % 2] FROM generate_series(151, 160) g;
INSERT INTO buses (id, plate, wheels, seats) SELECT g, 'BUS-' || g, 6, 20 + g % 60 FROM generate_series(161, 200) g;
RESET ROLE;
