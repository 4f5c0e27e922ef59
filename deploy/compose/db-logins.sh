#!/usr/bin/env bash
# The db-logins job of docker-compose.yml: one LOGIN user per service, a member of that
# service's group role only (mash_intake_login in mash_intake, ...), as the local stack
# makes them (deploy/local/postgres_access.py). The group roles and their grants are
# `mash db migrate`'s (services/common/database_roles.yaml), which runs first; a role it
# did not make stops this job (ON_ERROR_STOP) rather than leaving a login without rights.
#
# Passwords come from the environment (<SERVICE>_DB_PASSWORD, from .env) and are set again
# on every run, so a changed .env takes effect at the next `docker compose up`.
# psql reads PGHOST, PGUSER, PGDATABASE and PGPASSWORD (the superuser) from the environment.
set -euo pipefail

for service in intake screening routing notifications; do
    variable="${service^^}_DB_PASSWORD"
    password="${!variable:?$variable is not set}"
    # :'name' and :"name" are psql's quoting of a variable as a literal and an identifier.
    psql --quiet -v ON_ERROR_STOP=1 \
        -v login="mash_${service}_login" -v role="mash_${service}" -v password="$password" <<'SQL'
-- A second run re-grants: no notice that the login is already a member.
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I LOGIN', :'login')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'login') \gexec
ALTER ROLE :"login" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT PASSWORD :'password';
GRANT :"role" TO :"login";
SQL
    echo "db-logins: mash_${service}_login in mash_${service}"
done
