# Sourced by the bench scripts. They poll PostgreSQL several times a second while the worker
# runs, so the poll must not compete with it: Debian's `psql` is a Perl wrapper that costs about
# 45 ms of CPU per call (measured: 10 calls, 0.41 s user+sys; the binary itself 0.07 s), which at
# 5 polls/s took a tenth of these two cores away from the worker. Call the binary directly, and
# without TLS (the poll reads a count; the worker's own connections keep their configured mode).
PSQL_BIN=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
PSQL_BIN=${PSQL_BIN:-psql}
# bench_binary: builds the classify bench (release) and prints its executable's path, as cargo
# names it (not the newest file matching a glob, which can be a stale build).
bench_binary() {
  local out
  out=$(cargo bench --locked --bench classify --no-run 2>&1) || { echo "$out" >&2; return 1; }
  awk '/Executable/ { gsub(/[()]/, "", $NF); print $NF }' <<<"$out"
}

# bench_psql URL ARGS...: psql on URL (a postgres:// URL without query string) with sslmode=disable.
bench_psql() {
  local url=$1; shift
  "$PSQL_BIN" "$url?sslmode=disable" "$@"
}

# start_lis_sim IARI DIR [ARGS...]: starts `iari lis-sim` on a free port (AA to everything, with
# any further ARGS), sets LIS_PID and LIS_ADDR. The benches deliver over MLLP, the production
# transport: the `file` transport creates, fsyncs and renames one file per result, kernel work
# that is not the worker's own.
start_lis_sim() {
  local iari=$1 dir=$2 i
  shift 2
  "$iari" lis-sim --listen 127.0.0.1:0 "$@" > "$dir/lis.out" 2> "$dir/lis.log" &
  LIS_PID=$!
  for ((i = 0; i < 100; i++)); do
    LIS_ADDR=$(sed -n 's/^lis-sim listening on //p' "$dir/lis.out")
    [[ -n $LIS_ADDR ]] && return 0
    sleep 0.1
  done
  echo "lis-sim did not start: $(cat "$dir/lis.log")" >&2
  return 1
}
