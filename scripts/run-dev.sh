#!/usr/bin/env bash
# Builds and starts tessera in dev mode: SQLite and a generated dev PKI in ./tessera-data,
# listening on https://127.0.0.1:8443. Extra arguments go to `tessera serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --quiet -p tessera-server --bin tessera -- serve "$@"
