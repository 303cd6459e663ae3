-- A rental shop in the shape of pagila: several schemas, an enum, domains, views, a
-- materialized view, plpgsql functions and triggers, payments partitioned by month, full text
-- search, arrays, a custom aggregate, comments and a read-only role. Everything is owned by the
-- application role, as the database of an application is.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -f rental.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";

CREATE SCHEMA store;
CREATE SCHEMA billing;
CREATE SCHEMA search;
COMMENT ON SCHEMA billing IS 'money in';

CREATE TYPE public.mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE DOMAIN public.year AS integer CONSTRAINT year_check CHECK (VALUE >= 1901 AND VALUE <= 2155);
CREATE DOMAIN public.email AS text CHECK (VALUE ~ '^[^@]+@[^@]+$');

CREATE FUNCTION public.last_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_update = CURRENT_TIMESTAMP;
    RETURN NEW;
END $$;

CREATE AGGREGATE public.group_concat(text) (
    SFUNC = textcat, STYPE = text, INITCOND = ''
);

CREATE TABLE public.language (
    language_id serial PRIMARY KEY,
    name character(20) NOT NULL,
    last_update timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.actor (
    actor_id serial PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    last_update timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_actor_last_name ON public.actor (last_name);
CREATE TABLE public.category (
    category_id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    last_update timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.film (
    film_id serial PRIMARY KEY,
    title text NOT NULL,
    description text,
    release_year public.year,
    language_id integer NOT NULL REFERENCES public.language ON UPDATE CASCADE ON DELETE RESTRICT,
    rental_duration smallint NOT NULL DEFAULT 3,
    rental_rate numeric(4,2) NOT NULL DEFAULT 4.99,
    length smallint,
    replacement_cost numeric(5,2) NOT NULL DEFAULT 19.99,
    rating public.mpaa_rating DEFAULT 'G',
    special_features text[],
    fulltext tsvector NOT NULL,
    last_update timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX film_fulltext_idx ON public.film USING gist (fulltext);
CREATE INDEX idx_title ON public.film (title);
CREATE TRIGGER film_fulltext_trigger BEFORE INSERT OR UPDATE ON public.film
    FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger('fulltext', 'pg_catalog.english', 'title', 'description');
CREATE TRIGGER last_updated BEFORE UPDATE ON public.film FOR EACH ROW EXECUTE FUNCTION public.last_updated();
COMMENT ON COLUMN public.film.special_features IS 'an array of features';
CREATE TABLE public.film_actor (
    actor_id integer NOT NULL REFERENCES public.actor ON UPDATE CASCADE ON DELETE RESTRICT,
    film_id integer NOT NULL REFERENCES public.film ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, film_id)
);
CREATE TABLE public.film_category (
    film_id integer NOT NULL REFERENCES public.film ON UPDATE CASCADE ON DELETE RESTRICT,
    category_id integer NOT NULL REFERENCES public.category ON UPDATE CASCADE ON DELETE RESTRICT,
    PRIMARY KEY (film_id, category_id)
);

CREATE TABLE store.country (country_id serial PRIMARY KEY, country text NOT NULL);
CREATE TABLE store.city (
    city_id serial PRIMARY KEY,
    city text NOT NULL,
    country_id integer NOT NULL REFERENCES store.country
);
CREATE TABLE store.address (
    address_id serial PRIMARY KEY,
    address text NOT NULL,
    district text NOT NULL,
    city_id integer NOT NULL REFERENCES store.city,
    postal_code text,
    phone text NOT NULL
);
CREATE TABLE store.store (
    store_id serial PRIMARY KEY,
    manager_staff_id integer NOT NULL,
    address_id integer NOT NULL REFERENCES store.address
);
CREATE TABLE store.staff (
    staff_id serial PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    address_id integer NOT NULL REFERENCES store.address,
    email public.email,
    store_id integer NOT NULL REFERENCES store.store DEFERRABLE INITIALLY DEFERRED,
    active boolean NOT NULL DEFAULT true,
    username text NOT NULL,
    password text,
    picture bytea
);
ALTER TABLE store.store ADD FOREIGN KEY (manager_staff_id) REFERENCES store.staff DEFERRABLE INITIALLY DEFERRED;
CREATE TABLE store.customer (
    customer_id serial PRIMARY KEY,
    store_id integer NOT NULL REFERENCES store.store,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email public.email,
    address_id integer NOT NULL REFERENCES store.address,
    activebool boolean NOT NULL DEFAULT true,
    create_date date NOT NULL DEFAULT CURRENT_DATE,
    active integer
);
CREATE INDEX idx_last_name ON store.customer (last_name);
CREATE TABLE store.inventory (
    inventory_id serial PRIMARY KEY,
    film_id integer NOT NULL REFERENCES public.film,
    store_id integer NOT NULL REFERENCES store.store
);
CREATE INDEX idx_store_id_film_id ON store.inventory (store_id, film_id);
CREATE TABLE store.rental (
    rental_id serial PRIMARY KEY,
    rental_date timestamptz NOT NULL,
    inventory_id integer NOT NULL REFERENCES store.inventory,
    customer_id integer NOT NULL REFERENCES store.customer,
    return_date timestamptz,
    staff_id integer NOT NULL REFERENCES store.staff
);
CREATE UNIQUE INDEX idx_unq_rental ON store.rental (rental_date, inventory_id, customer_id);

CREATE TABLE billing.payment (
    payment_id serial,
    customer_id integer NOT NULL,
    staff_id integer NOT NULL,
    rental_id integer NOT NULL,
    amount numeric(5,2) NOT NULL,
    payment_date timestamptz NOT NULL,
    PRIMARY KEY (payment_date, payment_id)
) PARTITION BY RANGE (payment_date);
CREATE TABLE billing.payment_p2022_01 PARTITION OF billing.payment FOR VALUES FROM ('2022-01-01 00:00:00+00') TO ('2022-02-01 00:00:00+00');
CREATE TABLE billing.payment_p2022_02 PARTITION OF billing.payment FOR VALUES FROM ('2022-02-01 00:00:00+00') TO ('2022-03-01 00:00:00+00');
CREATE TABLE billing.payment_p2022_03 PARTITION OF billing.payment FOR VALUES FROM ('2022-03-01 00:00:00+00') TO ('2022-04-01 00:00:00+00');
CREATE TABLE billing.payment_p2022_04 PARTITION OF billing.payment FOR VALUES FROM ('2022-04-01 00:00:00+00') TO ('2022-05-01 00:00:00+00');
CREATE INDEX idx_fk_payment_customer ON billing.payment (customer_id);
ALTER TABLE billing.payment ADD FOREIGN KEY (customer_id) REFERENCES store.customer;

CREATE FUNCTION store.film_in_stock(p_film_id integer, p_store_id integer, OUT p_film_count integer)
RETURNS SETOF integer LANGUAGE sql AS $$
    SELECT inventory_id FROM store.inventory WHERE film_id = $1 AND store_id = $2;
$$;
CREATE FUNCTION billing.get_customer_balance(p_customer_id integer, p_effective_date timestamptz)
RETURNS numeric LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_payments numeric(5,2);
BEGIN
    SELECT coalesce(sum(amount), 0) INTO v_payments FROM billing.payment
     WHERE payment_date <= p_effective_date AND customer_id = p_customer_id;
    RETURN -v_payments;
END $$;
COMMENT ON FUNCTION billing.get_customer_balance(integer, timestamptz) IS 'what the customer owes';

-- Data.
INSERT INTO public.language (name, last_update)
    SELECT l, '2022-01-01' FROM unnest(ARRAY['English', 'Italian', 'Japanese', 'Mandarin', 'French', 'German']) l;
INSERT INTO public.actor (first_name, last_name, last_update)
    SELECT 'First' || g, (ARRAY['Guiness', 'Wahlberg', 'Chase', 'Davis', 'Lollobrigida'])[1 + g % 5] || g, '2022-01-01'
    FROM generate_series(1, 200) g;
INSERT INTO public.category (name, last_update)
    SELECT c, '2022-01-01' FROM unnest(ARRAY['Action', 'Animation', 'Children', 'Classics', 'Comedy', 'Documentary', 'Drama', 'Family']) c;
INSERT INTO public.film (title, description, release_year, language_id, rental_duration, rental_rate,
                         length, replacement_cost, rating, special_features, last_update)
    SELECT 'Film ' || g,
           'A ' || (ARRAY['Epic', 'Astounding', 'Fateful', 'Touching'])[1 + g % 4] || ' story of a ' ||
               (ARRAY['dentist', 'robot', 'monkey', 'moose'])[1 + g % 4] || ' in ' ||
               (ARRAY['Berlin', 'a shark tank', 'the Gulf of Mexico'])[1 + g % 3],
           2000 + g % 20, 1 + g % 6, 3 + g % 5, 0.99 + (g % 5), 60 + g % 120, 9.99 + g % 20,
           (ARRAY['G', 'PG', 'PG-13', 'R', 'NC-17']::public.mpaa_rating[])[1 + g % 5],
           CASE WHEN g % 7 = 0 THEN NULL ELSE (ARRAY['Trailers', 'Commentaries', 'Deleted Scenes', 'Behind the Scenes'])[1:1 + g % 4] END,
           '2022-01-01'
    FROM generate_series(1, 1000) g;
INSERT INTO public.film_actor (actor_id, film_id, last_update)
    SELECT DISTINCT 1 + (g * 7) % 200, 1 + g % 1000, timestamptz '2022-01-01' FROM generate_series(1, 5000) g;
INSERT INTO public.film_category SELECT g, 1 + g % 8 FROM generate_series(1, 1000) g;
INSERT INTO store.country (country) SELECT 'Country ' || g FROM generate_series(1, 20) g;
INSERT INTO store.city (city, country_id) SELECT 'City ' || g, 1 + g % 20 FROM generate_series(1, 100) g;
INSERT INTO store.address (address, district, city_id, postal_code, phone)
    SELECT g || ' Main Street', 'District ' || g % 10, 1 + g % 100, lpad((g * 37 % 99999)::text, 5, '0'), '555-' || g
    FROM generate_series(1, 700) g;
BEGIN;
INSERT INTO store.store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
INSERT INTO store.staff (first_name, last_name, address_id, email, store_id, username, password, picture)
    VALUES ('Mike', 'Hillyer', 3, 'mike@example.com', 1, 'Mike', '8cb2237d0679ca88db6464eac60da96345513964', '\x89504e470d0a1a0a'),
           ('Jon', 'Stephens', 4, 'jon@example.com', 2, 'Jon', NULL, NULL);
COMMIT;
INSERT INTO store.customer (store_id, first_name, last_name, email, address_id, activebool, create_date, active)
    SELECT 1 + g % 2, 'Customer' || g, 'Last' || g, 'c' || g || '@example.org', 5 + g % 695, g % 13 <> 0, date '2021-02-14' + g % 300, 1
    FROM generate_series(1, 599) g;
INSERT INTO store.inventory (film_id, store_id) SELECT 1 + g % 1000, 1 + g % 2 FROM generate_series(1, 4500) g;
INSERT INTO store.rental (rental_date, inventory_id, customer_id, return_date, staff_id)
    SELECT timestamptz '2022-01-01 00:00:00+00' + g * interval '17 minutes', 1 + g % 4500, 1 + g % 599,
           CASE WHEN g % 50 = 0 THEN NULL ELSE timestamptz '2022-01-03 00:00:00+00' + g * interval '17 minutes' END,
           1 + g % 2
    FROM generate_series(1, 8000) g;
INSERT INTO billing.payment (customer_id, staff_id, rental_id, amount, payment_date)
    SELECT customer_id, staff_id, rental_id, 0.99 + rental_id % 10, rental_date
    FROM store.rental WHERE rental_date < '2022-05-01 00:00:00+00';
-- Rows deleted after the insert: the sequence values are not the row counts.
DELETE FROM store.rental WHERE rental_id % 97 = 0 AND rental_id NOT IN (SELECT rental_id FROM billing.payment);

CREATE VIEW public.film_list AS
    SELECT f.film_id AS fid, f.title, f.description, c.name AS category, f.rental_rate AS price, f.length, f.rating,
           public.group_concat((a.first_name || ' ') || a.last_name) AS actors
    FROM public.category c
    LEFT JOIN public.film_category fc ON c.category_id = fc.category_id
    LEFT JOIN public.film f ON fc.film_id = f.film_id
    JOIN public.film_actor fa ON f.film_id = fa.film_id
    JOIN public.actor a ON fa.actor_id = a.actor_id
    GROUP BY f.film_id, f.title, f.description, c.name, f.rental_rate, f.length, f.rating;
CREATE VIEW store.customer_list AS
    SELECT cu.customer_id AS id, cu.first_name || ' ' || cu.last_name AS name, a.address, a.postal_code AS "zip code",
           a.phone, city.city, country.country, CASE WHEN cu.activebool THEN 'active' ELSE '' END AS notes, cu.store_id AS sid
    FROM store.customer cu
    JOIN store.address a ON cu.address_id = a.address_id
    JOIN store.city ON a.city_id = city.city_id
    JOIN store.country ON city.country_id = country.country_id;
CREATE MATERIALIZED VIEW billing.rental_by_category AS
    SELECT c.name AS category, sum(p.amount) AS total_sales
    FROM billing.payment p
    JOIN store.rental r ON p.rental_id = r.rental_id
    JOIN store.inventory i ON r.inventory_id = i.inventory_id
    JOIN public.film f ON i.film_id = f.film_id
    JOIN public.film_category fc ON f.film_id = fc.film_id
    JOIN public.category c ON fc.category_id = c.category_id
    GROUP BY c.name
    ORDER BY sum(p.amount) DESC
WITH DATA;
CREATE UNIQUE INDEX rental_category ON billing.rental_by_category (category);
CREATE MATERIALIZED VIEW search.film_words AS
    SELECT film_id, fulltext FROM public.film WITH NO DATA;
CREATE INDEX film_words_gin ON search.film_words USING gin (fulltext);

GRANT USAGE ON SCHEMA store, billing, search TO :"ro";
GRANT SELECT ON ALL TABLES IN SCHEMA public, store, billing, search TO :"ro";
RESET ROLE;
