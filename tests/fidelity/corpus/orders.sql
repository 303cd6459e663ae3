-- An order system in the shape of northwind: character keys, composite primary and foreign
-- keys, check constraints (on columns, on tables, NOT VALID), ON DELETE rules, a deferrable
-- unique constraint, an exclusion constraint, and stored discounts in real columns.
-- Owned by the application role.
--
-- psql -v db=NAME -v app=ROLE -v ro=ROLE -v pw=PASSWORD -f orders.sql   (as a superuser)

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"ro" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";

CREATE TABLE categories (
    category_id smallint PRIMARY KEY,
    category_name varchar(15) NOT NULL,
    description text,
    picture bytea
);
CREATE TABLE suppliers (
    supplier_id smallint PRIMARY KEY,
    company_name varchar(40) NOT NULL,
    country varchar(15),
    homepage text
);
CREATE TABLE products (
    product_id smallint PRIMARY KEY,
    product_name varchar(40) NOT NULL,
    supplier_id smallint REFERENCES suppliers,
    category_id smallint REFERENCES categories,
    quantity_per_unit varchar(20),
    unit_price real CHECK (unit_price >= 0),
    units_in_stock smallint CONSTRAINT stock_not_negative CHECK (units_in_stock >= 0),
    units_on_order smallint,
    reorder_level smallint,
    discontinued integer NOT NULL CHECK (discontinued IN (0, 1))
);
CREATE TABLE product_suppliers (
    product_id smallint REFERENCES products,
    supplier_id smallint REFERENCES suppliers,
    since date NOT NULL,
    PRIMARY KEY (product_id, supplier_id)
);
CREATE TABLE region (region_id smallint PRIMARY KEY, region_description bpchar NOT NULL);
CREATE TABLE territories (
    territory_id varchar(20) PRIMARY KEY,
    territory_description bpchar NOT NULL,
    region_id smallint NOT NULL REFERENCES region
);
CREATE TABLE employees (
    employee_id smallint PRIMARY KEY,
    last_name varchar(20) NOT NULL,
    first_name varchar(10) NOT NULL,
    title varchar(30),
    birth_date date,
    hire_date date,
    reports_to smallint REFERENCES employees,
    CHECK (hire_date > birth_date)
);
CREATE TABLE employee_territories (
    employee_id smallint REFERENCES employees ON DELETE CASCADE,
    territory_id varchar(20) REFERENCES territories,
    PRIMARY KEY (employee_id, territory_id)
);
CREATE TABLE customers (
    customer_id bpchar PRIMARY KEY,
    company_name varchar(40) NOT NULL,
    contact_name varchar(30),
    country varchar(15),
    phone varchar(24)
);
CREATE TABLE shippers (shipper_id smallint PRIMARY KEY, company_name varchar(40) NOT NULL, phone varchar(24));
CREATE TABLE orders (
    order_id smallint PRIMARY KEY,
    customer_id bpchar REFERENCES customers ON DELETE SET NULL,
    employee_id smallint REFERENCES employees,
    order_date date,
    required_date date,
    shipped_date date,
    ship_via smallint REFERENCES shippers,
    freight real,
    CONSTRAINT shipped_after_order CHECK (shipped_date >= order_date)
);
CREATE TABLE order_details (
    order_id smallint NOT NULL REFERENCES orders ON DELETE CASCADE,
    product_id smallint NOT NULL,
    supplier_id smallint NOT NULL,
    unit_price real NOT NULL,
    quantity smallint NOT NULL CHECK (quantity > 0),
    discount real NOT NULL CHECK (discount >= 0 AND discount <= 1),
    PRIMARY KEY (order_id, product_id),
    FOREIGN KEY (product_id, supplier_id) REFERENCES product_suppliers (product_id, supplier_id)
);
CREATE TABLE us_states (
    state_id smallint PRIMARY KEY,
    state_name varchar(100),
    state_abbr varchar(2),
    CONSTRAINT state_abbr_unique UNIQUE (state_abbr) DEFERRABLE INITIALLY IMMEDIATE
);
CREATE TABLE promotions (
    promotion_id smallint PRIMARY KEY,
    product_id smallint REFERENCES products,
    active daterange NOT NULL,
    EXCLUDE USING gist (active WITH &&)
);

INSERT INTO categories SELECT g, 'Category ' || g, 'Things of kind ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 8) g;
INSERT INTO suppliers SELECT g, 'Supplier ' || g, 'Country ' || g % 16, CASE WHEN g % 3 = 0 THEN 'http://s' || g || '.example' END FROM generate_series(1, 29) g;
INSERT INTO products SELECT g, 'Product ' || g, 1 + g % 29, 1 + g % 8, (g % 24) || ' boxes', 2.5 + g * 1.25, g % 120, g % 80, g % 30, (g % 9 = 0)::int FROM generate_series(1, 77) g;
INSERT INTO product_suppliers SELECT p, s, date '2019-01-01' + p * 3 + s FROM generate_series(1, 77) p, generate_series(1, 29) s WHERE (p + s) % 5 = 0 OR s = 1 + p % 29;
INSERT INTO region VALUES (1, 'Eastern'), (2, 'Western'), (3, 'Northern'), (4, 'Southern');
INSERT INTO territories SELECT lpad(g::text, 5, '0'), 'Territory ' || g, 1 + g % 4 FROM generate_series(1, 53) g;
INSERT INTO employees VALUES (2, 'Fuller', 'Andrew', 'Vice President, Sales', '1952-02-19', '1992-08-14', NULL);
INSERT INTO employees SELECT g, 'Last' || g, 'First' || g, 'Sales Representative', date '1960-01-01' + g * 300, date '1993-01-01' + g * 40, 2 FROM generate_series(3, 11) g;
INSERT INTO employee_territories SELECT 2 + g % 10, lpad((1 + g % 53)::text, 5, '0') FROM generate_series(1, 49) g ON CONFLICT DO NOTHING;
INSERT INTO customers SELECT upper(substr(md5(g::text), 1, 5)), 'Company ' || g, 'Contact ' || g, 'Country ' || g % 21, '030-' || g FROM generate_series(1, 91) g;
INSERT INTO shippers VALUES (1, 'Speedy Express', '(503) 555-9831'), (2, 'United Package', '(503) 555-3199'), (3, 'Federal Shipping', '(503) 555-9931');
INSERT INTO orders
    SELECT 10247 + g, upper(substr(md5((1 + g % 91)::text), 1, 5)), 2 + g % 10, date '1996-07-04' + g, date '1996-08-01' + g,
           CASE WHEN g % 20 = 0 THEN NULL ELSE date '1996-07-10' + g END, 1 + g % 3, (g * 7.31)::real
    FROM generate_series(1, 830) g;
INSERT INTO order_details
    SELECT o, ps.product_id, ps.supplier_id, 3.5 + ps.product_id * 0.5, 1 + (o + ps.product_id) % 40, ((o % 5) * 0.05)::real
    FROM generate_series(10248, 11077) o
    JOIN LATERAL (SELECT product_id, supplier_id FROM product_suppliers WHERE product_id IN (1 + o % 77, 1 + (o * 3) % 77) ORDER BY 1, 2 LIMIT 3) ps ON true
    ON CONFLICT DO NOTHING;
INSERT INTO us_states SELECT g, 'State ' || g, chr(65 + g / 26) || chr(65 + g % 26) FROM generate_series(1, 51) g;
INSERT INTO promotions SELECT g, 1 + g % 77, daterange(date '2020-01-01' + g * 10, date '2020-01-01' + g * 10 + 7) FROM generate_series(1, 30) g;
-- A constraint that old rows violate, added NOT VALID.
ALTER TABLE orders ADD CONSTRAINT freight_small CHECK (freight < 5000) NOT VALID;

CREATE VIEW order_totals AS
    SELECT o.order_id, o.customer_id, sum(d.unit_price * d.quantity * (1 - d.discount)) AS total
    FROM orders o JOIN order_details d USING (order_id) GROUP BY o.order_id, o.customer_id;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"ro";
RESET ROLE;
