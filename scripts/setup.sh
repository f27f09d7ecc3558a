#!/usr/bin/env bash
# Installs what building Tessera needs beyond a Rust toolchain: OpenSSL headers (josekit),
# libpq (diesel's PostgreSQL driver) and pkg-config. Idempotent; does nothing when present.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Install Rust (https://rustup.rs), version 1.88 or newer." >&2
  exit 1
fi

missing=()
pkg-config --version >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
{ pkg-config --exists libpq 2>/dev/null || [ -e /usr/include/postgresql/libpq-fe.h ]; } || missing+=(libpq-dev)

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install the development packages for: ${missing[*]}" >&2
    exit 1
  fi
fi
