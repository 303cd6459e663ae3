-- Database privileges granted by a role that is not the owner: the owner grants CONNECT and
-- CREATE WITH GRANT OPTION to alice, alice grants CONNECT on to bob (grantor alice), and the
-- owner revokes TEMPORARY from PUBLIC. The ACL records each grantor.
--
-- psql -v db=NAME -v app=ROLE -v alice=ROLE -v bob=ROLE -v pw=PASSWORD -f db_grants.sql

CREATE ROLE :"app" LOGIN PASSWORD :'pw';
CREATE ROLE :"alice" LOGIN PASSWORD :'pw';
CREATE ROLE :"bob" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"app";
\connect :"db"
SET ROLE :"app";
GRANT CONNECT, CREATE ON DATABASE :"db" TO :"alice" WITH GRANT OPTION;
REVOKE TEMPORARY ON DATABASE :"db" FROM PUBLIC;
CREATE TABLE t (id int PRIMARY KEY);
INSERT INTO t SELECT generate_series(1, 10);
RESET ROLE;
SET ROLE :"alice";
GRANT CONNECT ON DATABASE :"db" TO :"bob";
RESET ROLE;
