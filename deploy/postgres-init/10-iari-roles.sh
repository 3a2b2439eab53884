#!/usr/bin/env bash
# Runs once, when the PostgreSQL container initialises an empty data directory
# (/docker-entrypoint-initdb.d): the login the worker connects with, `iari_app`, a member of
# `iari_worker` only, and the workstation's, `iari_web`, a member of `iari_workstation` only. It owns nothing, so it cannot disable the audit triggers or rewrite rows;
# the schema is `iari migrate`'s, run by the owner login (POSTGRES_USER).
#
# The NOLOGIN roles are created here because the grant needs them before the first migration
# runs; migration 0004 tolerates their existing.
set -euo pipefail
: "${IARI_APP_PASSWORD:?set IARI_APP_PASSWORD (the database password of the worker login iari_app)}"
: "${IARI_WEB_PASSWORD:?set IARI_WEB_PASSWORD (the database password of the workstation login iari_web)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$IARI_APP_PASSWORD" -v web_password="$IARI_WEB_PASSWORD" <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'iari_worker') THEN
        CREATE ROLE iari_worker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'iari_auditor') THEN
        CREATE ROLE iari_auditor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'iari_workstation') THEN
        CREATE ROLE iari_workstation NOLOGIN;
    END IF;
END $$;
CREATE ROLE iari_app LOGIN PASSWORD :'app_password' IN ROLE iari_worker;
CREATE ROLE iari_web LOGIN PASSWORD :'web_password' IN ROLE iari_workstation;
SQL
