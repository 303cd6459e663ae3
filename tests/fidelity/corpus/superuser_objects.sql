-- Objects only a superuser may create, beside the application's own: a publication FOR ALL
-- TABLES and an event trigger (both superuser-only), a publication FOR TABLE with a row filter
-- and a column list owned by the application, and the event trigger's function.
-- Needs a superuser to load (the event trigger and the FOR ALL TABLES publication).
--
-- psql -v db=NAME -v app=ROLE -v pw=PASSWORD -f superuser_objects.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric, secret text);
CREATE TABLE ddl_log (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), tag text, object text);
INSERT INTO orders SELECT g, 'customer ' || g % 40, g * 1.5, md5(g::text) FROM generate_series(1, 400) g;
CREATE PUBLICATION app_orders FOR TABLE orders (id, customer, total) WHERE (total > 10);
RESET ROLE;
CREATE PUBLICATION everything FOR ALL TABLES WITH (publish = 'insert, update');
CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        INSERT INTO public.ddl_log (tag, object) VALUES (r.command_tag, r.object_identity);
    END LOOP;
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl();
ALTER EVENT TRIGGER log_ddl DISABLE;
CREATE EVENT TRIGGER log_ddl_replica ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION public.log_ddl();
ALTER EVENT TRIGGER log_ddl_replica ENABLE REPLICA;
