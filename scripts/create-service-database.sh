#!/bin/sh
# Creates lago-api-integration's own login role and database on the PostgreSQL server it shares with Lago, as the
# server's superuser. Idempotent: creates what is missing, (re)sets the role's password, never drops anything.
# compose.yaml runs it (service postgres-init) before the service starts; by hand:
#   PGHOST=… PGUSER=lago PGPASSWORD=… SERVICE_DB_PASSWORD=… sh scripts/create-service-database.sh
#
# The role owns its database and nothing else (no superuser, no CREATEDB, no rights on Lago's tables), and other
# roles lose the default CONNECT right on it: the service and Lago share the server, not a database.
#
# Environment: the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE) for the superuser connection,
# and SERVICE_DB_PASSWORD (required), SERVICE_DB_USER and SERVICE_DB_NAME (default lago_integration).
set -eu

: "${SERVICE_DB_PASSWORD:?SERVICE_DB_PASSWORD is required (INTEGRATION_DB_PASSWORD in .env)}"
SERVICE_DB_USER="${SERVICE_DB_USER:-lago_integration}"
SERVICE_DB_NAME="${SERVICE_DB_NAME:-lago_integration}"

# Values travel as psql variables and are quoted by psql (:'v' literal, :"v" identifier), never spliced into SQL.
psql -v ON_ERROR_STOP=1 -q -X \
  -v role="$SERVICE_DB_USER" -v password="$SERVICE_DB_PASSWORD" -v dbname="$SERVICE_DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'dbname', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec
ALTER DATABASE :"dbname" OWNER TO :"role";
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO :"role";
SQL

echo "database \"$SERVICE_DB_NAME\" ready for role \"$SERVICE_DB_USER\""
