#!/usr/bin/env bash
# Tessera performance benchmark (issue 7). See docs/performance.md for the method and how to
# read the table.
#
#   bash bench/run.sh [--quick] [--cluster] [--clients N] [--registrations N] [--duration SECS]
#                     [--connections C] [--no-build] [--only LIST]
#
#   --quick          short runs (5 s per scenario, 3,000 clients for the memory run): a few minutes
#   --cluster        also run on PostgreSQL + Redis (a production configuration; PG on
#                    127.0.0.1:5432 trust auth and Redis on 127.0.0.1:6379, override with
#                    BENCH_PG_URL / BENCH_REDIS_URL)
#   --clients N      clients registered for the memory measurement (default 100000; quick 3000)
#   --registrations N  registrations in the PostgreSQL registration scenario (default 20000; quick 2000)
#   --duration S     seconds per load scenario (default 30; quick 5)
#   --connections C  concurrent connections of the closed-loop scenarios (default 32)
#   --no-build       use the binaries already built
#   --only LIST      comma-separated scenario groups: token,ps256,handshake,introspect,openloop,
#                    registration,memory,ceiling,cluster (default: all; cluster needs --cluster
#                    and runs all of its own scenarios). registration and memory are one run.
#
# Loopback only; every load run is bounded in time or count and the script stops every process
# it started (by pid) on exit. Results: one table on stdout and bench/results/<date>.json.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PY="python3 $ROOT/bench/lib/bench.py"

QUICK=0 CLUSTER=0 BUILD=1 ONLY="" CLIENTS="" REGS="" DURATION="" CONNECTIONS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --cluster) CLUSTER=1 ;;
    --no-build) BUILD=0 ;;
    --clients) CLIENTS=$2; shift ;;
    --registrations) REGS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0" | grep '^#'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ $QUICK = 1 ]; then
  : "${DURATION:=5}" "${CLIENTS:=3000}" "${REGS:=2000}"; MODE=quick
else
  : "${DURATION:=30}" "${CLIENTS:=100000}" "${REGS:=20000}"; MODE=full
fi
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

log() { printf '\n== %s\n' "$*" >&2; }

# ---------------------------------------------------------------- tools
OHA=$(command -v oha || true)
[ -z "$OHA" ] && [ -x "$HOME/.cargo/bin/oha" ] && OHA=$HOME/.cargo/bin/oha
if [ -z "$OHA" ]; then
  log "oha not found: cargo install oha --locked (this compiles for several minutes)"
  cargo install oha --locked
  OHA=$HOME/.cargo/bin/oha
fi
if [ $BUILD = 1 ]; then
  log "building tessera (release)"
  cargo build --release -p tessera-server --bin tessera
  log "building the ceiling and the sequential load driver (bench/ceiling, outside the workspace)"
  [ -f bench/ceiling/Cargo.lock ] || cp Cargo.lock bench/ceiling/Cargo.lock
  CARGO_TARGET_DIR=$TARGET cargo build --release --manifest-path bench/ceiling/Cargo.toml
fi
TESSERA=${BENCH_TESSERA:-$TARGET/release/tessera}  # BENCH_TESSERA: another build, e.g. an older commit
CEILING=$TARGET/release/ceiling
SEQLOAD=$TARGET/release/seqload
for b in "$TESSERA" "$CEILING" "$SEQLOAD"; do [ -x "$b" ] || { echo "missing $b (run without --no-build)" >&2; exit 1; }; done

# Server on one core, load generator on the other (2-core machine), when taskset works.
NCPU=$(nproc)
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ] && taskset -c 0 true 2>/dev/null; then
  SERVER_CPUS=${BENCH_SERVER_CPUS:-0}
  LOAD_CPUS=${BENCH_LOAD_CPUS:-1}
  ON_SERVER="taskset -c $SERVER_CPUS"
  ON_LOAD="taskset -c $LOAD_CPUS"
  LOAD_THREADS=$(( $(echo "$LOAD_CPUS" | tr ',' '\n' | wc -l) ))
else
  SERVER_CPUS=all LOAD_CPUS=all ON_SERVER="" ON_LOAD="" LOAD_THREADS=$NCPU
fi
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/tessera-bench.XXXXXX)
SCEN=$WORK/scenarios
mkdir -p "$SCEN" "$ROOT/bench/results"
STAMP=$(date -u +%Y-%m-%dT%H-%M-%SZ)
RESULTS=$ROOT/bench/results/$STAMP.json
[ $MODE = quick ] && RESULTS=$ROOT/bench/results/$STAMP-quick.json
PIDS=()
PG_DB=""
ASSEMBLED=0
cleanup() {
  local rc=$?
  if [ "$ASSEMBLED" = 0 ] && [ -n "$(ls "$SCEN" 2>/dev/null)" ] && [ -f "$WORK/meta.json" ]; then
    # Keep what was measured before a failure, marked incomplete.
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); m['incomplete']='exit status $rc'; json.dump(m, open(sys.argv[1],'w'))" "$WORK/meta.json" || true
    $PY assemble --dir "$SCEN" --meta "$WORK/meta.json" --out "${RESULTS%.json}-incomplete.json" || true
  fi
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ -n "$PG_DB" ]; then psql "$PG_BASE/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true; fi
  if [ -n "${REDIS_PREFIX:-}" ] && command -v redis-cli >/dev/null; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
  fi
  [ "${BENCH_KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

cpu_ticks() {
  if [ ! -r "/proc/$1/stat" ]; then
    echo "the server (pid $1) is gone; its last log lines:" >&2
    tail -5 "$WORK"/logs/*.err >&2 || true
    exit 1
  fi
  awk '{print $14 + $15}' "/proc/$1/stat"
}
machine_ticks() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t "," $5+$6; exit}' /proc/stat; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# start_server NAME LOGDIR ARGS... -> sets SERVER_PID, SERVER_URL
start_server() {
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  $ON_SERVER "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  local i
  for i in $(seq 1 300); do
    if grep -q "listening on https://" "$dir/$name.out" 2>/dev/null; then
      SERVER_URL=$(grep -m1 -o "https://[0-9.:]*" <(grep "listening on" "$dir/$name.out"))
      sleep 0.3
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "server $name exited:" >&2; tail -20 "$dir/$name.err" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "server $name did not start in 30 s" >&2; tail -20 "$dir/$name.err" >&2; exit 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]:-}"; do [ "$p" != "$1" ] && keep+=("$p"); done
  PIDS=("${keep[@]:-}")
}

# run_oha NAME TITLE TARGET PID CERT KEY CA URL EXTRA_OHA_ARGS...
run_oha() {
  local name=$1 title=$2 target=$3 pid=$4 cert=$5 key=$6 ca=$7 url=$8; shift 8
  local out=$WORK/$name.oha.json
  local cmd=("$OHA" --no-tui --output-format json -o "$out" --worker-threads "$LOAD_THREADS" -w
    --cert "$cert" --key "$key" --cacert "$ca" "$@" "$url")
  log "$title"
  local la; la=$(loadavg)
  local c0 m0 c1 m1
  c0=$(cpu_ticks "$pid"); m0=$(machine_ticks)
  local TIMEFORMAT='%U %S'
  # shellcheck disable=SC2086
  { time $ON_LOAD "${cmd[@]}" >/dev/null 2>"$WORK/$name.oha.err"; } 2>"$WORK/$name.time" \
    || { echo "oha failed:" >&2; cat "$WORK/$name.oha.err" >&2; exit 1; }
  c1=$(cpu_ticks "$pid"); m1=$(machine_ticks)
  $PY scenario --name "$name" --title "$title" --target "$target" --server "$pid" --kind oha --load-cpu "$(tail -1 "$WORK/$name.time")" \
    --command "$ON_LOAD ${cmd[*]}" --load "$out" --out "$SCEN/$(printf '%02d' ${#SCEN_N[@]})-$name.json" \
    --cpu-before "$c0" --cpu-after "$c1" --clk-tck "$CLK_TCK" --machine-before "$m0" --machine-after "$m1" --loadavg "$la"
  SCEN_N+=("$name")
}

# run_seq NAME TITLE TARGET PID CERT KEY CA URL BODIES
run_seq() {
  local name=$1 title=$2 target=$3 pid=$4 cert=$5 key=$6 ca=$7 url=$8 bodies=$9
  local out=$WORK/$name.seq.json
  local cmd=("$SEQLOAD" --url "$url" --cert "$cert" --key "$key" --cacert "$ca" --bodies "$bodies"
    -c "${SEQ_CONNECTIONS:-16}" --threads "$LOAD_THREADS" --content-type application/json)
  log "$title"
  local la; la=$(loadavg)
  local c0 m0 c1 m1
  c0=$(cpu_ticks "$pid"); m0=$(machine_ticks)
  local TIMEFORMAT='%U %S'
  # shellcheck disable=SC2086
  { time $ON_LOAD "${cmd[@]}" >"$out"; } 2>"$WORK/$name.time"
  c1=$(cpu_ticks "$pid"); m1=$(machine_ticks)
  $PY scenario --name "$name" --title "$title" --target "$target" --server "$pid" --kind seq --load-cpu "$(tail -1 "$WORK/$name.time")" \
    --command "$ON_LOAD ${cmd[*]}" --load "$out" --out "$SCEN/$(printf '%02d' ${#SCEN_N[@]})-$name.json" \
    --cpu-before "$c0" --cpu-after "$c1" --clk-tck "$CLK_TCK" --machine-before "$m0" --machine-after "$m1" --loadavg "$la"
  SCEN_N+=("$name")
}

memory() { # NAME TITLE TARGET PID CLIENTS
  $PY memory --name "$1" --title "$2" --target "$3" --rss-kb "$(rss_kb "$4")" --clients "$5" \
    --out "$SCEN/$(printf '%02d' ${#SCEN_N[@]})-$1.json"
  SCEN_N+=("$1")
}
SCEN_N=()

FORM=(-m POST -T application/x-www-form-urlencoded)
T_TOKEN=">= 20,000/s, <= 50 us CPU"
T_HANDSHAKE=">= 4,000/s"
T_INTRO=">= 25,000/s"
T_OPEN="p99 <= 5 ms"
T_REG=">= 2,000/s, p99 <= 50 ms"
T_RSS="<= 128 MB at 100,000"

# A dev-mode node with a registered fintech client: sets D, URL, PID, CID.
dev_node() { # NAME [ENV=VALUE...]
  local name=$1; shift
  D=$WORK/$name
  "$TESSERA" dev software-statement --data-dir "$D" >/dev/null # creates the dev PKI
  start_server "$name" "$WORK/logs" env "$@" "$TESSERA" serve --data-dir "$D" --listen 127.0.0.1:0 --log-format json
  URL=$SERVER_URL PID=$SERVER_PID
  CA=$D/dev/ca.pem CERT=$D/dev/client.pem KEY=$D/dev/client.key GWCERT=$D/dev/gateway.pem GWKEY=$D/dev/gateway.key
  CID=$($PY register --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --scope accounts:read --expect-scope accounts:read \
    --ssa "$("$TESSERA" dev software-statement --data-dir "$D" --roles AISP)")
}

token_scenarios() { # PREFIX TITLE_PREFIX GATEWAY_ID GWCERT GWKEY (uses URL PID CA CERT KEY CID)
  local p=$1 t=$2 gw=$3 gwcert=$4 gwkey=$5
  run_oha "${p}token_es256_keepalive" "${t}token ES256 mTLS keep-alive" "$T_TOKEN" "$PID" "$CERT" "$KEY" "$CA" "$URL/token" \
    "${FORM[@]}" -d "grant_type=client_credentials&client_id=$CID" -c "$CONNECTIONS" -z "${DURATION}s"
  if [ -z "$p" ] && want handshake; then
    run_oha "token_es256_new_handshake" "token ES256 mTLS new handshake/request" "$T_HANDSHAKE" "$PID" "$CERT" "$KEY" "$CA" "$URL/token" \
      "${FORM[@]}" -d "grant_type=client_credentials&client_id=$CID" -c "$CONNECTIONS" -z "${DURATION}s" --disable-keepalive
  fi
  if want introspect; then
    local pool=$WORK/${p}pool.txt revoked=$WORK/${p}revoked.txt n=$(( QUICK ? 300 : 1000 ))
    $PY tokens --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --client-id "$CID" --gateway-id "$gw" --n $n --out "$pool"
    $PY tokens --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --client-id "$CID" --gateway-id "$gw" --n $n --out "$revoked"
    $PY revoke --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --client-id "$CID" --tokens "$revoked.raw"
    $PY introspect-check --url "$URL" --cert "$gwcert" --key "$gwkey" --ca "$CA" --bodies "$pool" --want true
    $PY introspect-check --url "$URL" --cert "$gwcert" --key "$gwkey" --ca "$CA" --bodies "$revoked" --want false
    run_oha "${p}introspect_active" "${t}introspect active (pool of $n)" "$T_INTRO" "$PID" "$gwcert" "$gwkey" "$CA" "$URL/introspect" \
      "${FORM[@]}" -Z "$pool" -c "$CONNECTIONS" -z "${DURATION}s"
    run_oha "${p}introspect_revoked" "${t}introspect revoked (pool of $n)" "$T_INTRO" "$PID" "$gwcert" "$gwkey" "$CA" "$URL/introspect" \
      "${FORM[@]}" -Z "$revoked" -c "$CONNECTIONS" -z "${DURATION}s"
  fi
  if want openloop; then
    run_oha "${p}token_es256_open_loop_5000" "${t}token ES256 open loop 5,000/s" "$T_OPEN" "$PID" "$CERT" "$KEY" "$CA" "$URL/token" \
      "${FORM[@]}" -d "grant_type=client_credentials&client_id=$CID" -c 64 -z "${DURATION}s" -q 5000 --latency-correction
    # The same below this machine's capacity: latency without a growing queue.
    run_oha "${p}token_es256_open_loop_2000" "${t}token ES256 open loop 2,000/s" "(below capacity)" "$PID" "$CERT" "$KEY" "$CA" "$URL/token" \
      "${FORM[@]}" -d "grant_type=client_credentials&client_id=$CID" -c 64 -z "${DURATION}s" -q 2000 --latency-correction
  fi
}

cat >"$WORK/meta.json" <<EOF
{"date": "$STAMP", "mode": "$MODE", "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +dirty)",
 "cores": $NCPU, "server_cpus": "$SERVER_CPUS", "load_cpus": "$LOAD_CPUS", "loadavg_start": "$(loadavg)",
 "duration_s": $DURATION, "connections": $CONNECTIONS, "clients": $CLIENTS, "registrations_pg": $REGS,
 "oha": "$("$OHA" --version | head -1)", "rustc": "$(rustc --version)", "kernel": "$(uname -r)",
 "cpu_model": "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)", "results_file": "${RESULTS#"$ROOT"/}",
 "tessera_binary_built": "$(date -u -r "$TESSERA" +%Y-%m-%dT%H:%M:%SZ)"}
EOF

# ---------------------------------------------------------------- dev mode (SQLite), ES256
if want token || want handshake || want introspect || want openloop; then
  log "dev node (SQLite, ES256)"
  dev_node es256
  token_scenarios "" "" dev-gateway "$GWCERT" "$GWKEY"
  stop_server "$PID"
fi

if want introspect && [ -z "${BENCH_TESSERA:-}" ]; then # (older builds lack the setting)
  # The introspection rows above mostly hit the verified-token cache (a pool of tokens asked about
  # again and again, as a gateway does). This one has the cache off: every request checks an ES256
  # signature, the cost of a token a gateway sees for the first time.
  log "dev node (SQLite, ES256), verified-token cache off"
  dev_node nocache TESSERA_INTROSPECTION__VERIFIED_CACHE_ENTRIES=0
  n=$(( QUICK ? 300 : 1000 ))
  $PY tokens --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --client-id "$CID" --gateway-id dev-gateway --n $n --out "$WORK/nocache-pool.txt"
  $PY introspect-check --url "$URL" --cert "$GWCERT" --key "$GWKEY" --ca "$CA" --bodies "$WORK/nocache-pool.txt" --want true
  run_oha "introspect_active_uncached" "introspect active, verified-token cache off" "$T_INTRO" "$PID" "$GWCERT" "$GWKEY" "$CA" "$URL/introspect" \
    "${FORM[@]}" -Z "$WORK/nocache-pool.txt" -c "$CONNECTIONS" -z "${DURATION}s"
  stop_server "$PID"
fi

if want ps256; then
  log "dev node (SQLite, PS256, fresh data dir)"
  dev_node ps256 TESSERA_KEYS__ALGORITHM=PS256
  run_oha "token_ps256_keepalive" "token PS256 mTLS keep-alive" "(no target)" "$PID" "$CERT" "$KEY" "$CA" "$URL/token" \
    "${FORM[@]}" -d "grant_type=client_credentials&client_id=$CID" -c "$CONNECTIONS" -z "${DURATION}s"
  stop_server "$PID"
fi

# ---------------------------------------------------------------- registration + memory (SQLite)
if want registration || want memory; then
  log "dev node (SQLite) for registration and memory: $CLIENTS clients"
  dev_node mem
  sleep 2
  memory rss_idle "RSS idle (dev mode, 1 client)" "" "$PID" 1
  $PY ssa-bodies --data-dir "$D" --tessera "$TESSERA" --n "$CLIENTS" --out "$WORK/reg-sqlite.jsonl"
  run_seq "register_sqlite" "registration SQLite ($CLIENTS distinct SSAs)" "$T_REG" "$PID" "$CERT" "$KEY" "$CA" "$URL/register" \
    "$WORK/reg-sqlite.jsonl"
  memory rss_after_registrations "RSS after registering $CLIENTS clients" "$T_RSS" "$PID" "$CLIENTS"
  stop_server "$PID"
  start_server mem-restart "$WORK/logs" "$TESSERA" serve --data-dir "$D" --listen 127.0.0.1:0 --log-format json
  sleep 2
  memory rss_restart_loaded "RSS after restart, $CLIENTS clients cached" "$T_RSS" "$SERVER_PID" "$CLIENTS"
  stop_server "$SERVER_PID"
fi

# ---------------------------------------------------------------- the bare ceiling
if want ceiling; then
  log "bare ceiling (actix-web + rustls + josekit)"
  CD=$WORK/ceiling-pki
  "$TESSERA" dev software-statement --data-dir "$CD" >/dev/null
  start_server ceiling "$WORK/logs" "$CEILING" --listen 127.0.0.1:0 --cert "$CD/dev/server.pem" --key "$CD/dev/server.key" --ca "$CD/dev/ca.pem"
  run_oha "ceiling_es256_keepalive" "CEILING token ES256 mTLS keep-alive" "(reference)" "$SERVER_PID" \
    "$CD/dev/client.pem" "$CD/dev/client.key" "$CD/dev/ca.pem" "$SERVER_URL/token" \
    "${FORM[@]}" -d "grant_type=client_credentials&client_id=ceiling" -c "$CONNECTIONS" -z "${DURATION}s"
  if want openloop; then
    run_oha "ceiling_es256_open_loop_5000" "CEILING token ES256 open loop 5,000/s" "(reference)" "$SERVER_PID" \
      "$CD/dev/client.pem" "$CD/dev/client.key" "$CD/dev/ca.pem" "$SERVER_URL/token" \
      "${FORM[@]}" -d "grant_type=client_credentials&client_id=ceiling" -c 64 -z "${DURATION}s" -q 5000 --latency-correction
  fi
  if want handshake; then
    run_oha "ceiling_es256_new_handshake" "CEILING token ES256 new handshake/request" "(reference)" "$SERVER_PID" \
      "$CD/dev/client.pem" "$CD/dev/client.key" "$CD/dev/ca.pem" "$SERVER_URL/token" \
      "${FORM[@]}" -d "grant_type=client_credentials&client_id=ceiling" -c "$CONNECTIONS" -z "${DURATION}s" --disable-keepalive
  fi
  stop_server "$SERVER_PID"
fi

# ---------------------------------------------------------------- cluster: PostgreSQL + Redis
if [ $CLUSTER = 1 ] && want cluster; then
  PG_BASE=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
  REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
  PG_DB=tessera_bench_$$
  REDIS_PREFIX=tessera-bench-$$
  log "cluster node: PostgreSQL $PG_BASE/$PG_DB + Redis $REDIS_URL (prefix $REDIS_PREFIX)"
  psql "$PG_BASE/postgres" -qc "CREATE DATABASE $PG_DB" >/dev/null
  D=$WORK/cluster
  "$TESSERA" dev software-statement --data-dir "$D" >/dev/null # reuse the dev PKI and demo directory
  # The shipped policy plus one rule granting introspection to gateways (no reviewer here).
  { cat deploy/onboarding.cedar; cat <<'EOF'

@id("bench-gateways-granted")
@tier("medium")
permit (principal, action == Tessera::Action::"grant", resource == Tessera::Scope::"introspection")
when { principal.roles.contains("GATEWAY") };
EOF
  } >"$D/policy.cedar"
  cat >"$D/tessera.toml" <<EOF
issuer = "https://tessera.bench.test"
# The dev PKI and demo directory are reused: allowed only with this flag.
dangerous_allow_dev_material = true

[server]
listen = "127.0.0.1:0"
tls_cert_file = "$D/dev/server.pem"
tls_key_file = "$D/dev/server.key"
client_ca_files = ["$D/dev/ca.pem"]

[database]
url = "$PG_BASE/$PG_DB"

[keys]
encryption_key_file = "$D/dev/key-encryption.key"

[registration]
policy_file = "$D/policy.cedar"

[[registration.directories]]
issuer = "tessera-dev-directory"
jwks_file = "$D/dev/directory.jwks.json"
algorithms = ["ES256"]
max_ssa_age_secs = 3600

[redis]
url = "$REDIS_URL"
prefix = "$REDIS_PREFIX"
EOF
  "$TESSERA" check-config --config "$D/tessera.toml" >/dev/null
  start_server cluster "$WORK/logs" "$TESSERA" serve --config "$D/tessera.toml"
  URL=$SERVER_URL PID=$SERVER_PID
  CA=$D/dev/ca.pem CERT=$D/dev/client.pem KEY=$D/dev/client.key
  CID=$($PY register --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --scope accounts:read --expect-scope accounts:read \
    --ssa "$("$TESSERA" dev software-statement --data-dir "$D" --roles AISP)")
  # The gateway registers with the demo certificate (its OU is the organisation) and role GATEWAY.
  GW=$($PY register --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --scope introspection --expect-scope introspection \
    --ssa "$("$TESSERA" dev software-statement --data-dir "$D" --software-id bench-gateway --roles GATEWAY)")
  ONLY_SAVED=$ONLY; ONLY=""; want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
  token_scenarios "pg_" "PG+Redis: " "$GW" "$CERT" "$KEY"
  ONLY=$ONLY_SAVED
  $PY ssa-bodies --data-dir "$D" --tessera "$TESSERA" --n "$REGS" --out "$WORK/reg-pg.jsonl"
  run_seq "register_postgres" "PG+Redis: registration ($REGS distinct SSAs)" "$T_REG" "$PID" "$CERT" "$KEY" "$CA" "$URL/register" \
    "$WORK/reg-pg.jsonl"
  memory pg_rss_after_registrations "PG+Redis: RSS after $REGS registrations" "" "$PID" "$REGS"
  stop_server "$PID"
fi

$PY assemble --dir "$SCEN" --meta "$WORK/meta.json" --out "$RESULTS"
ASSEMBLED=1
