-- pgkeep demo: a small school-bus application database.
CREATE TABLE "SBI_USER" (
    id          serial PRIMARY KEY,
    "USERNAME"  text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    email       text,
    role        text NOT NULL DEFAULT 'inspector',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE routes (
    id        serial PRIMARY KEY,
    code      text NOT NULL UNIQUE,
    district  text NOT NULL,
    stops     jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE vehicles (
    id          serial PRIMARY KEY,
    plate       text NOT NULL UNIQUE,
    capacity    int  NOT NULL CHECK (capacity > 0),
    route_id    int REFERENCES routes(id),
    in_service  boolean NOT NULL DEFAULT true
);
CREATE TABLE inspections (
    id            bigserial PRIMARY KEY,
    vehicle_id    int NOT NULL REFERENCES vehicles(id),
    inspector_id  int NOT NULL REFERENCES "SBI_USER"(id),
    inspected_at  timestamptz NOT NULL,
    passed        boolean NOT NULL,
    notes         text
);
CREATE INDEX ON inspections (vehicle_id, inspected_at);
CREATE VIEW vehicle_last_inspection AS
    SELECT DISTINCT ON (vehicle_id) vehicle_id, inspected_at, passed
    FROM inspections ORDER BY vehicle_id, inspected_at DESC;
COMMENT ON TABLE "SBI_USER" IS 'People who log in: inspectors, district staff, administrators';

INSERT INTO "SBI_USER" ("USERNAME", full_name, email, role)
SELECT 'user' || g, 'Inspector ' || g, 'user' || g || '@district.example', 
       (ARRAY['inspector','district','admin'])[1 + g % 3]
FROM generate_series(1, 250) g;
INSERT INTO "SBI_USER" ("USERNAME", full_name, email, role)
VALUES ('o''brien', 'Siobhán O''Brien', 'sob@district.example', 'admin');
INSERT INTO routes (code, district, stops)
SELECT 'R-' || lpad(g::text, 3, '0'), 'District ' || (1 + g % 7),
       jsonb_build_array('Stop ' || g, 'School ' || (g % 11))
FROM generate_series(1, 60) g;
INSERT INTO vehicles (plate, capacity, route_id)
SELECT 'BUS-' || g, 24 + (g % 4) * 12, 1 + g % 60 FROM generate_series(1, 120) g;
INSERT INTO inspections (vehicle_id, inspector_id, inspected_at, passed, notes)
SELECT 1 + g % 120, 1 + g % 250, timestamptz '2026-01-01' + g * interval '37 minutes',
       g % 13 <> 0, CASE WHEN g % 13 = 0 THEN 'brakes: needs adjustment' END
FROM generate_series(1, 5000) g;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO sbi_readonly;
