-- A music store in the shape of chinook: quoted CamelCase identifiers, a self-referencing
-- employee hierarchy, invoices with numeric money, playlists with a composite key, timestamps,
-- and a view and a function over them. Owned by the application role.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -f music.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";

CREATE TABLE "Artist" ("ArtistId" integer PRIMARY KEY, "Name" varchar(120));
CREATE TABLE "Album" (
    "AlbumId" integer PRIMARY KEY,
    "Title" varchar(160) NOT NULL,
    "ArtistId" integer NOT NULL REFERENCES "Artist" ("ArtistId")
);
CREATE INDEX "IFK_AlbumArtistId" ON "Album" ("ArtistId");
CREATE TABLE "Genre" ("GenreId" integer PRIMARY KEY, "Name" varchar(120));
CREATE TABLE "MediaType" ("MediaTypeId" integer PRIMARY KEY, "Name" varchar(120));
CREATE TABLE "Track" (
    "TrackId" integer PRIMARY KEY,
    "Name" varchar(200) NOT NULL,
    "AlbumId" integer REFERENCES "Album" ("AlbumId"),
    "MediaTypeId" integer NOT NULL REFERENCES "MediaType" ("MediaTypeId"),
    "GenreId" integer REFERENCES "Genre" ("GenreId"),
    "Composer" varchar(220),
    "Milliseconds" integer NOT NULL,
    "Bytes" integer,
    "UnitPrice" numeric(10,2) NOT NULL
);
CREATE INDEX "IFK_TrackAlbumId" ON "Track" ("AlbumId");
CREATE TABLE "Employee" (
    "EmployeeId" integer PRIMARY KEY,
    "LastName" varchar(20) NOT NULL,
    "FirstName" varchar(20) NOT NULL,
    "Title" varchar(30),
    "ReportsTo" integer REFERENCES "Employee" ("EmployeeId"),
    "BirthDate" timestamp,
    "HireDate" timestamp,
    "Email" varchar(60)
);
CREATE TABLE "Customer" (
    "CustomerId" integer PRIMARY KEY,
    "FirstName" varchar(40) NOT NULL,
    "LastName" varchar(20) NOT NULL,
    "Company" varchar(80),
    "Country" varchar(40),
    "Email" varchar(60) NOT NULL,
    "SupportRepId" integer REFERENCES "Employee" ("EmployeeId")
);
CREATE TABLE "Invoice" (
    "InvoiceId" integer PRIMARY KEY,
    "CustomerId" integer NOT NULL REFERENCES "Customer" ("CustomerId"),
    "InvoiceDate" timestamp NOT NULL,
    "BillingCountry" varchar(40),
    "Total" numeric(10,2) NOT NULL
);
CREATE TABLE "InvoiceLine" (
    "InvoiceLineId" integer PRIMARY KEY,
    "InvoiceId" integer NOT NULL REFERENCES "Invoice" ("InvoiceId"),
    "TrackId" integer NOT NULL REFERENCES "Track" ("TrackId"),
    "UnitPrice" numeric(10,2) NOT NULL,
    "Quantity" integer NOT NULL
);
CREATE TABLE "Playlist" ("PlaylistId" integer PRIMARY KEY, "Name" varchar(120));
CREATE TABLE "PlaylistTrack" (
    "PlaylistId" integer NOT NULL REFERENCES "Playlist" ("PlaylistId"),
    "TrackId" integer NOT NULL REFERENCES "Track" ("TrackId"),
    CONSTRAINT "PK_PlaylistTrack" PRIMARY KEY ("PlaylistId", "TrackId")
);

INSERT INTO "Artist" SELECT g, 'Artist ' || g || CASE WHEN g % 11 = 0 THEN ' & Friends' ELSE '' END FROM generate_series(1, 275) g;
INSERT INTO "Album" SELECT g, 'Album ' || g, 1 + g % 275 FROM generate_series(1, 347) g;
INSERT INTO "Genre" SELECT g, (ARRAY['Rock', 'Jazz', 'Metal', 'Alternative & Punk', 'Blues', 'Latin', 'Reggae', 'Pop'])[g] FROM generate_series(1, 8) g;
INSERT INTO "MediaType" VALUES (1, 'MPEG audio file'), (2, 'Protected AAC audio file'), (3, 'Purchased AAC audio file');
INSERT INTO "Track"
    SELECT g, 'Track ' || g, CASE WHEN g % 100 = 0 THEN NULL ELSE 1 + g % 347 END, 1 + g % 3, 1 + g % 8,
           CASE WHEN g % 3 = 0 THEN NULL ELSE 'Composer ' || g % 50 END, 180000 + g * 13, 3000000 + g * 1001, 0.99 + (g % 2)
    FROM generate_series(1, 3503) g;
INSERT INTO "Employee" VALUES (1, 'Adams', 'Andrew', 'General Manager', NULL, '1962-02-18', '2002-08-14', 'andrew@chinookcorp.com');
INSERT INTO "Employee" SELECT g, 'Last' || g, 'First' || g, 'Sales Support Agent', 1 + (g - 2) / 3, '1970-01-01'::timestamp + g * interval '400 days', '2003-01-01'::timestamp + g * interval '30 days', 'e' || g || '@chinookcorp.com' FROM generate_series(2, 8) g;
INSERT INTO "Customer" SELECT g, 'First' || g, 'Last' || g, CASE WHEN g % 4 = 0 THEN 'Company ' || g END, 'Country ' || g % 24, 'c' || g || '@example.com', 2 + g % 7 FROM generate_series(1, 59) g;
INSERT INTO "Invoice" SELECT g, 1 + g % 59, '2021-01-01'::timestamp + g * interval '1 day 3 hours', 'Country ' || g % 24, 0 FROM generate_series(1, 412) g;
INSERT INTO "InvoiceLine" SELECT g, 1 + g % 412, 1 + (g * 13) % 3503, 0.99 + (g % 2), 1 + g % 3 FROM generate_series(1, 2240) g;
UPDATE "Invoice" i SET "Total" = s.total FROM (SELECT "InvoiceId", sum("UnitPrice" * "Quantity") AS total FROM "InvoiceLine" GROUP BY 1) s WHERE s."InvoiceId" = i."InvoiceId";
INSERT INTO "Playlist" SELECT g, 'Playlist ' || g FROM generate_series(1, 18) g;
INSERT INTO "PlaylistTrack" SELECT DISTINCT 1 + g % 18, 1 + (g * 7) % 3503 FROM generate_series(1, 8715) g;

CREATE VIEW "TopSelling" AS
    SELECT t."Name", sum(il."Quantity") AS "Sold"
    FROM "InvoiceLine" il JOIN "Track" t USING ("TrackId")
    GROUP BY t."Name";
CREATE FUNCTION "InvoiceTotal"(invoice integer) RETURNS numeric LANGUAGE sql STABLE
    RETURN (SELECT sum("UnitPrice" * "Quantity") FROM "InvoiceLine" WHERE "InvoiceId" = invoice);

GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"ro";
RESET ROLE;
