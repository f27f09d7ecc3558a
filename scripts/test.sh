#!/usr/bin/env bash
# Runs the whole test suite. Suites that need PostgreSQL or Redis use the services on 127.0.0.1
# (5432 and 6379) when they answer, otherwise start private instances from the installed
# binaries, otherwise print "... SUITE SKIPPED: <reason>" (CI sets TESSERA_TEST_REQUIRE_PG=1 and
# TESSERA_TEST_REQUIRE_REDIS=1, which turns a skip into a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p target
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e
if grep -q "SUITE SKIPPED" target/test-output.log; then
  echo
  echo "WARNING: some suites did not run:"
  grep "SUITE SKIPPED" target/test-output.log | sort -u
fi
exit "$status"
