#!/bin/sh
# Runs once, when the postgres-data volume is initialised (the image's
# /docker-entrypoint-initdb.d). Creates:
#   messagekit  owner of the orders database: the services, the examples and
#               `admin-api migrate` connect as it.
#   debezium    the connector's user (debezium/outbox-connector.json):
#               REPLICATION for the slot, and a member of messagekit so that
#               it owns outbox_events for publication.autocreate.mode=filtered.
# The passwords come from deployments/.env through the container environment.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v db="$POSTGRES_DB" -v app_password="$MESSAGEKIT_DB_PASSWORD" -v cdc_password="$OUTBOX_DB_PASSWORD" <<'SQL'
CREATE ROLE messagekit LOGIN PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO messagekit;
CREATE ROLE debezium LOGIN REPLICATION PASSWORD :'cdc_password';
GRANT messagekit TO debezium;
GRANT CREATE, CONNECT ON DATABASE :"db" TO debezium;
SQL
