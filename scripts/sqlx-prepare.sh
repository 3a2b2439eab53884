#!/usr/bin/env bash
# Regenerates .sqlx/, the offline data of the compile-time checked queries (sqlx::query! and
# friends), so that a build needs no database: the macros describe each query against a scratch
# database migrated from migrations/ and write one file per query. With --check, fails when the
# committed .sqlx/ differs from what the queries and migrations give now.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${IARI_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
db="iari_sqlx_prepare_$$"
out=$(mktemp -d)
trap 'psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
psql -q "$base/postgres" -c "CREATE DATABASE $db" >/dev/null
for f in migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$base/$db" -f "$f" >/dev/null
done
# The macros run when the crate compiles: force that, online, writing into $out.
touch src/lib.rs
SQLX_OFFLINE=false DATABASE_URL="$base/$db" SQLX_OFFLINE_DIR="$out" \
  cargo check --locked --lib --quiet
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r -q "$out" .sqlx >/dev/null 2>&1; then
    diff -r "$out" .sqlx | head -40
    echo "sqlx-prepare: .sqlx/ is out of date; run scripts/sqlx-prepare.sh and commit it" >&2
    exit 1
  fi
  echo "sqlx-prepare: .sqlx/ is up to date ($(ls .sqlx | wc -l) queries)"
else
  rm -rf .sqlx && mkdir .sqlx && cp "$out"/*.json .sqlx/
  echo "sqlx-prepare: wrote $(ls .sqlx | wc -l) query files to .sqlx/"
fi
