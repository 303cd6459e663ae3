-- Row-level security: tables with RLS enabled and forced, permissive and restrictive policies
-- for the application and a reporting role, policies using a session setting, and a
-- security-definer function that the policies call. With FORCE, pg_dump as the table's owner
-- fails ("query would be affected by row-level security policy"): back it up as a role with
-- BYPASSRLS or as a superuser.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -f rls.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE documents (
    id int PRIMARY KEY,
    tenant_id int NOT NULL REFERENCES tenants,
    owner_name name NOT NULL DEFAULT current_user,
    classified boolean NOT NULL DEFAULT false,
    body text
);
CREATE FUNCTION current_tenant() RETURNS int LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT nullif(current_setting('app.tenant', true), '')::int
$$;
INSERT INTO tenants SELECT g, 'Tenant ' || g FROM generate_series(1, 10) g;
INSERT INTO documents SELECT g, 1 + g % 10, current_user, g % 9 = 0, 'Body of document ' || g FROM generate_series(1, 2000) g;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON documents USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
CREATE POLICY owner_all ON documents TO :"app" USING (true) WITH CHECK (true);
CREATE POLICY reporting ON documents AS PERMISSIVE FOR SELECT TO :"ro" USING (true);
CREATE POLICY no_classified ON documents AS RESTRICTIVE FOR SELECT TO :"ro" USING (NOT classified);
COMMENT ON POLICY no_classified ON documents IS 'reporting never sees classified documents';
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON tenants FOR SELECT USING (true);
GRANT SELECT ON documents, tenants TO :"ro";
RESET ROLE;
