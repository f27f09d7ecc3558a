#!/usr/bin/env bash
# Where the server's CPU goes: a dev-mode node (SQLite, ES256) under oha load, sampled with
# `perf record` (no call graphs: the release binary has symbols but no frame pointers), one flat
# profile per scenario, grouped by symbol and by crate. Needs perf, oha and the release binaries
# that bench/run.sh builds.
#
#   bash bench/profile.sh [--duration SECS]     (default 10)
#
# With CALLGRAPH=1, perf also records DWARF call graphs (from .eh_frame; heavier, so sampled at
# 199 Hz) and each file gets the inclusive ("children") share of the Tessera functions, which
# attributes the libraries' time to the code that called them (e.g. the audit writer).
#
# Writes bench/results/profile-<date>/{token,introspect,register,ceiling}.txt. Loopback only; stops
# what it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PY="python3 $ROOT/bench/lib/bench.py"
DURATION=10
[ "${1:-}" = --duration ] && DURATION=$2
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
TESSERA=$TARGET/release/tessera
SEQLOAD=$TARGET/release/seqload
CEILING=$TARGET/release/ceiling
for b in "$OHA" "$TESSERA" "$SEQLOAD" "$CEILING"; do [ -x "$b" ] || { echo "missing $b: run bench/run.sh first" >&2; exit 1; }; done
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }

ON_SERVER="" ON_LOAD=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then ON_SERVER="taskset -c 0" ON_LOAD="taskset -c 1"; fi
WORK=$(mktemp -d /tmp/tessera-profile.XXXXXX)
OUT=$ROOT/bench/results/profile-$(date -u +%Y-%m-%dT%H-%M-%SZ)
mkdir -p "$OUT"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

D=$WORK/node
"$TESSERA" dev software-statement --data-dir "$D" >/dev/null
$ON_SERVER "$TESSERA" serve --data-dir "$D" --listen 127.0.0.1:0 --log-format json >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 1 300); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -m1 -o "https://[0-9.:]*" <(grep "listening on" "$WORK/out"))
CA=$D/dev/ca.pem CERT=$D/dev/client.pem KEY=$D/dev/client.key
CID=$($PY register --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --scope accounts:read \
  --ssa "$("$TESSERA" dev software-statement --data-dir "$D" --roles AISP)")
$PY tokens --url "$URL" --cert "$CERT" --key "$KEY" --ca "$CA" --client-id "$CID" --gateway-id dev-gateway --n 300 --out "$WORK/pool"

profile() { # NAME LOAD-COMMAND...
  local name=$1; shift
  if [ "${CALLGRAPH:-0}" = 1 ]; then
    perf record -F 199 --call-graph dwarf,32768 -p "$PID" -o "$WORK/$name.data" 2>/dev/null &
  else
    perf record -F 997 -p "$PID" -o "$WORK/$name.data" 2>/dev/null &
  fi
  local perf_pid=$!
  sleep 0.5
  "$@" >/dev/null
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  {
    echo "# $name: perf record -F 997 -p <tessera pid> during: $*"
    echo "## by crate (share of server samples)"
    perf report -i "$WORK/$name.data" --no-children --sort dso,sym --stdio 2>/dev/null | python3 "$ROOT/bench/lib/perf_crates.py" || true
    echo
    echo "## top symbols"
    perf report -i "$WORK/$name.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | grep '%' | head -45 || true
    if [ "${CALLGRAPH:-0}" = 1 ]; then
      echo
      echo "## inclusive share (children) of selected functions"
      perf report -i "$WORK/$name.data" --children --sort sym --stdio -g none 2>/dev/null | grep '%' \
        | grep -E 'tessera_|AuditSink|writer|webpki|josekit|rustls::conn|actix_http::h1|diesel|sqlite3_step|serde_json::ser|metrics|tracing_subscriber|x509_parser|__libc_write|__libc_read|syscall|epoll|fdatasync|fsync' \
        | head -60 || true
    fi
  } >"$OUT/$name.txt"
  echo "wrote $OUT/$name.txt"
}

OHA_COMMON=(--no-tui --worker-threads 1 -c 32 -z "${DURATION}s" -w -m POST -T application/x-www-form-urlencoded --cacert "$CA")
profile token $ON_LOAD "$OHA" "${OHA_COMMON[@]}" --cert "$CERT" --key "$KEY" \
  -d "grant_type=client_credentials&client_id=$CID" "$URL/token"
profile introspect $ON_LOAD "$OHA" "${OHA_COMMON[@]}" --cert "$D/dev/gateway.pem" --key "$D/dev/gateway.key" \
  -Z "$WORK/pool" "$URL/introspect"
$PY ssa-bodies --data-dir "$D" --tessera "$TESSERA" --n $((DURATION * 300)) --out "$WORK/reg.jsonl"
profile register $ON_LOAD "$SEQLOAD" --url "$URL/register" --cert "$CERT" --key "$KEY" --cacert "$CA" \
  --bodies "$WORK/reg.jsonl" -c 16 --threads 1

# The bare ceiling under the same token load, for comparison.
kill "$PID"; wait "$PID" 2>/dev/null || true
$ON_SERVER "$CEILING" --listen 127.0.0.1:0 --cert "$D/dev/server.pem" --key "$D/dev/server.key" --ca "$CA" >"$WORK/cout" 2>&1 &
PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/cout" 2>/dev/null && break; sleep 0.1; done
CURL=$(grep -m1 -o "https://[0-9.:]*" <(grep "listening on" "$WORK/cout"))
profile ceiling $ON_LOAD "$OHA" "${OHA_COMMON[@]}" --cert "$CERT" --key "$KEY" \
  -d "grant_type=client_credentials&client_id=ceiling" "$CURL/token"
