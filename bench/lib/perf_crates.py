#!/usr/bin/env python3
"""Reads `perf report --no-children --sort dso,sym --stdio` (or --sort sym) on stdin and prints
the share of samples per component (crate or library), largest first."""

import re
import sys

# (where to look, pattern, component): "dso" rules first, then symbols inside the binary.
RULES = [
    ("dso", r"libcrypto\.so", "OpenSSL libcrypto (josekit: JWT sign/verify)"),
    ("dso", r"libssl\.so", "OpenSSL libssl"),
    ("dso", r"^libc\.so|^libm\.so|ld-linux", "libc (malloc, memcpy)"),
    ("dso", r"kernel|kallsyms|^\[k", "kernel (syscalls, TCP loopback, scheduling)"),
    ("dso", r"libpq", "libpq"),
    ("sym", r"nistz256|aws_lc|^bssl|p256|fiat_|x25519|mlkem|ml_kem|gcm_|aes_hw|aesni|sha256_block|sha512_block|bn_mul_mont|beeu_mod|^ChaCha|poly1305", "aws-lc (TLS records/handshakes, webpki signature checks)"),
    ("sym", r"webpki", "webpki (path building)"),
    ("sym", r"^<?rustls::", "rustls (TLS state machine)"),
    ("sym", r"x509_parser|der_parser|asn1_rs", "x509-parser (CertFacts)"),
    ("sym", r"serde_json|serde::", "serde_json"),
    ("sym", r"josekit", "josekit (Rust side)"),
    ("sym", r"sqlite3|^yy_|diesel|^sqlite|^pager|^btree|^vdbe|^wal", "SQLite / diesel"),
    ("sym", r"cedar|smol_str", "cedar (onboarding policy)"),
    ("sym", r"tracing", "tracing (logs)"),
    ("sym", r"actix|^<?h2::|^<?http::|httparse|^<?bytes::|local_channel|futures_", "actix-web / HTTP"),
    ("sym", r"tokio|mio::", "tokio"),
    ("sym", r"tessera_", "tessera crates"),
    ("sym", r"base64", "base64"),
    ("sym", r"sha2::|digest", "sha2"),
    ("sym", r"hashbrown|core::hash|siphash|std::collections", "hash maps"),
    ("sym", r"^<?core::|^<?alloc::|^<?std::|__rust|^_ZN", "Rust std (alloc/fmt/str)"),
]

total = {}
for line in sys.stdin:
    m = re.match(r"\s*([0-9.]+)%\s+(.*)$", line)
    if not m:
        continue
    pct, rest = float(m.group(1)), m.group(2)
    # `dso  [.] symbol` or `[.] symbol`
    parts = re.split(r"\s+\[[.k]\]\s+", rest, maxsplit=1)
    dso, sym = (parts[0], parts[1]) if len(parts) == 2 else ("", rest)
    if "[k]" in rest:
        dso = "[kernel"
    cat = "other (%s)" % (dso.strip() or "?")
    for where, pattern, name in RULES:
        if re.search(pattern, dso.strip() if where == "dso" else sym.strip()):
            cat = name
            break
    total[cat] = total.get(cat, 0.0) + pct

for cat, pct in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"{pct:6.1f}%  {cat}")
