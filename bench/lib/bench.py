#!/usr/bin/env python3
"""Helpers for bench/run.sh: software statements, token pools, revocation, oha summaries, the
results file and the table. Standard library only, except ES256 signing of software statements,
which uses the `cryptography` package when it is importable and falls back to running
`tessera dev software-statement` once per statement otherwise (slow, but always there)."""

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import ssl
import subprocess
import sys
import time


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_int(s: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


# ---------------------------------------------------------------- software statements

def ssa_claims(issuer, software_id, org_id, org_name, roles):
    return {
        "iss": issuer,
        "iat": int(time.time()),
        "jti": b64u(os.urandom(16)),
        "software_id": software_id,
        "software_client_name": f"{software_id} (bench)",
        "software_client_description": "Registered by bench/run.sh",
        "software_mode": "Test",
        "software_roles": roles,
        "software_redirect_uris": ["https://demo-fintech.example/callback"],
        "org_id": org_id,
        "org_name": org_name,
        "org_status": "Active",
    }


def es256_signer(jwk):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.derive_private_key(b64u_int(jwk["d"]), ec.SECP256R1())

    def sign(header, claims):
        signing_input = (
            b64u(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64u(json.dumps(claims, separators=(",", ":")).encode())
        )
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    return sign


def cmd_ssa_bodies(a):
    manifest = json.load(open(os.path.join(a.data_dir, "dev", "manifest.json")))
    jwk = json.load(open(manifest["directory"]["signing_key_jwk"]))
    issuer = manifest["directory"]["issuer"]
    roles = [r for r in a.roles.split(",") if r]
    out = open(a.out, "w")
    try:
        sign = es256_signer(jwk)
        header = {"alg": "ES256", "typ": "JWT", "kid": jwk.get("kid")}
        for i in range(a.n):
            sid = a.software_id if not a.distinct_software else f"{a.software_id}-{i}"
            ssa = sign(header, ssa_claims(issuer, sid, a.org_id, a.org_name, roles))
            out.write(json.dumps({"software_statement": ssa, "scope": a.scope}) + "\n")
        how = "python cryptography"
    except ImportError:
        # The documented way: one `tessera dev software-statement` per statement (random jti).
        def one(_):
            return subprocess.run(
                [a.tessera, "dev", "software-statement", "--data-dir", a.data_dir, "--software-id", a.software_id,
                 "--org-id", a.org_id, "--org-name", a.org_name, "--roles", a.roles],
                check=True, capture_output=True, text=True).stdout.strip()
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for ssa in pool.map(one, range(a.n)):
                out.write(json.dumps({"software_statement": ssa, "scope": a.scope}) + "\n")
        how = "tessera dev software-statement"
    out.close()
    print(f"{a.n} software statements ({how}) -> {a.out}", file=sys.stderr)


# ---------------------------------------------------------------- HTTP with a client certificate

class Conn:
    """One keep-alive HTTPS connection with a client certificate."""

    def __init__(self, url, cert, key, ca):
        assert url.startswith("https://")
        self.hostport = url[len("https://"):].split("/")[0]
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx
        self.conn = None

    def post(self, path, body, content_type="application/x-www-form-urlencoded"):
        for attempt in range(3):
            try:
                if self.conn is None:
                    host, port = self.hostport.rsplit(":", 1)
                    self.conn = http.client.HTTPSConnection(host, int(port), context=self.ctx, timeout=30)
                self.conn.request("POST", path, body=body, headers={"Content-Type": content_type})
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise


def cmd_register(a):
    c = Conn(a.url, a.cert, a.key, a.ca)
    status, data = c.post("/register", json.dumps({"software_statement": a.ssa, "scope": a.scope}), "application/json")
    if status != 201:
        sys.exit(f"registration failed: {status} {data[:500]!r}")
    body = json.loads(data)
    print(body["client_id"])
    if a.expect_scope and body.get("scope") != a.expect_scope:
        sys.exit(f"registration granted {body.get('scope')!r}, expected {a.expect_scope!r}: {body}")


def cmd_tokens(a):
    """N access tokens for client_id, written as introspection form bodies for the gateway."""
    c = Conn(a.url, a.cert, a.key, a.ca)
    with open(a.out, "w") as out, open(a.out + ".raw", "w") as raw:
        for _ in range(a.n):
            status, data = c.post("/token", f"grant_type=client_credentials&client_id={a.client_id}")
            if status != 200:
                sys.exit(f"token failed: {status} {data[:500]!r}")
            tok = json.loads(data)["access_token"]
            raw.write(tok + "\n")
            out.write(f"client_id={a.gateway_id}&token={tok}\n")


def cmd_revoke(a):
    c = Conn(a.url, a.cert, a.key, a.ca)
    n = 0
    for tok in open(a.tokens):
        tok = tok.strip()
        if not tok:
            continue
        status, data = c.post("/revoke", f"client_id={a.client_id}&token={tok}")
        if status != 200:
            sys.exit(f"revoke failed: {status} {data[:500]!r}")
        n += 1
    print(f"revoked {n} tokens", file=sys.stderr)


def cmd_introspect_check(a):
    """Introspects the first body of a pool once; checks `active`."""
    c = Conn(a.url, a.cert, a.key, a.ca)
    body = open(a.bodies).readline().strip()
    status, data = c.post("/introspect", body)
    got = json.loads(data).get("active") if status == 200 else None
    want = a.want == "true"
    if got is not want:
        sys.exit(f"introspection check: {status} {data[:300]!r}, wanted active={want}")


# ---------------------------------------------------------------- measurements

def oha_summary(path):
    d = json.load(open(path))
    codes = {str(k): int(v) for k, v in (d.get("statusCodeDistribution") or {}).items()}
    errs = {str(k): int(v) for k, v in (d.get("errorDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    requests = sum(codes.values()) + sum(errs.values())
    pct = d.get("latencyPercentiles") or {}
    summ = d.get("summary") or {}
    ms = lambda v: None if v is None else v * 1000.0
    return {
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "status": codes,
        "transport_errors": errs,
        "seconds": summ.get("total"),
        "rps": summ.get("requestsPerSec"),
        "p50_ms": ms(pct.get("p50")),
        "p90_ms": ms(pct.get("p90")),
        "p99_ms": ms(pct.get("p99")),
        "max_ms": ms(summ.get("slowest")),
    }


def cmd_scenario(a):
    """Combines a load result (oha JSON or seqload JSON) with the server's CPU delta."""
    load = oha_summary(a.load) if a.kind == "oha" else json.load(open(a.load))
    cpu_s = (a.cpu_after - a.cpu_before) / a.clk_tck
    busy = others = None
    load_cpu_s = sum(float(x) for x in a.load_cpu.split()) if a.load_cpu.strip() else None
    if a.machine_before and a.machine_after:
        b = [int(x) for x in a.machine_before.split(",")]
        e = [int(x) for x in a.machine_after.split(",")]
        total, idle = e[0] - b[0], e[1] - b[1]
        busy = round(100.0 * (total - idle) / total, 1) if total > 0 else None
        if total > 0 and load_cpu_s is not None:
            # CPU used by neither the server nor the load generator: other people's work on a
            # shared machine (compilers, tests), PostgreSQL/Redis in cluster runs, this script.
            other_s = (total - idle) / a.clk_tck - cpu_s - load_cpu_s
            others = round(max(0.0, 100.0 * other_s / (total / a.clk_tck)), 1)
    rec = {
        "name": a.name,
        "title": a.title,
        "target": a.target,
        "server": a.server,
        "command": a.command,
        **load,
        "server_cpu_seconds": round(cpu_s, 3),
        "server_cpu_us_per_request": round(cpu_s * 1e6 / load["requests"], 1) if load["requests"] else None,
        "machine_busy_percent": busy,
        "load_generator_cpu_seconds": load_cpu_s,
        "others_cpu_percent_of_machine": others,
        "loadavg_before": a.loadavg,
    }
    json.dump(rec, open(a.out, "w"), indent=1)
    p = lambda v: "-" if v is None else f"{v:.2f}"
    print(f"  {a.title}: {load['rps'] or 0:,.0f} req/s, p50 {p(load['p50_ms'])} ms, p99 {p(load['p99_ms'])} ms, "
          f"errors {load['errors']}, server CPU {rec['server_cpu_us_per_request']} us/req, machine busy {busy}%, "
          f"others {others}%",
          file=sys.stderr)
    if load["errors"]:
        print(f"  !! {load['errors']} errors: {load.get('status')} {load.get('transport_errors') or load.get('first_error')}",
              file=sys.stderr)


def cmd_assemble(a):
    scenarios = []
    for f in sorted(os.listdir(a.dir)):
        if f.endswith(".json"):
            scenarios.append(json.load(open(os.path.join(a.dir, f))))
    meta = json.load(open(a.meta))
    by = {s["name"]: s for s in scenarios}
    ceiling = by.get("ceiling_es256_keepalive")
    tess = by.get("token_es256_keepalive")
    if ceiling and tess and ceiling.get("rps"):
        meta["tessera_percent_of_ceiling"] = round(100.0 * tess["rps"] / ceiling["rps"], 1)
        # Throughput moves with other load on a shared machine; CPU per request does not.
        if ceiling.get("server_cpu_us_per_request") and tess.get("server_cpu_us_per_request"):
            meta["tessera_percent_of_ceiling_by_cpu"] = round(
                100.0 * ceiling["server_cpu_us_per_request"] / tess["server_cpu_us_per_request"], 1)
    out = {"meta": meta, "scenarios": [s for s in scenarios if s.get("kind") != "memory"],
           "memory": [s for s in scenarios if s.get("kind") == "memory"]}
    json.dump(out, open(a.out, "w"), indent=1)
    print_table(out)


def cmd_memory(a):
    rec = {"kind": "memory", "name": a.name, "title": a.title, "target": a.target, "rss_mb": round(a.rss_kb / 1024.0, 1),
           "clients": a.clients}
    json.dump(rec, open(a.out, "w"), indent=1)
    print(f"  {a.title}: {rec['rss_mb']} MB RSS", file=sys.stderr)


def print_table(res):
    m = res["meta"]
    by = {s["name"]: s for s in res["scenarios"]}
    c, t = by.get("ceiling_es256_keepalive"), by.get("token_es256_keepalive")
    if c and t and c.get("server_cpu_us_per_request") and t.get("server_cpu_us_per_request"):
        m.setdefault("tessera_percent_of_ceiling_by_cpu",
                     round(100.0 * c["server_cpu_us_per_request"] / t["server_cpu_us_per_request"], 1))
    print()
    print(f"Tessera benchmark {m['date']}  mode={m['mode']}  commit={m.get('commit')}  cores={m.get('cores')}  "
          f"server CPUs={m.get('server_cpus')}  load CPUs={m.get('load_cpus')}  loadavg at start={m.get('loadavg_start')}")
    hdr = (f"{'scenario':<44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'CPU us/req':>10} "
           f"{'2-core est/s':>12} {'others%':>7}  target")
    print(hdr)
    print("-" * len(hdr))
    f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    for s in res["scenarios"]:
        cpu = s.get('server_cpu_us_per_request')
        est = 2e6 / cpu if cpu else None
        print(f"{s['title'][:44]:<44} {f(s.get('rps'), 0):>9} {f(s.get('p50_ms')):>8} {f(s.get('p99_ms')):>8} "
              f"{s.get('errors', '-'):>6} {f(cpu, 1):>10} {f(est, 0):>12} "
              f"{f(s.get('others_cpu_percent_of_machine'), 0):>7}  {s.get('target') or ''}")
    for s in res["memory"]:
        print(f"{s['title'][:44]:<44} {'RSS ' + f(s['rss_mb'], 1) + ' MB':>35}{'':>34}  {s.get('target') or ''}")
    if "tessera_percent_of_ceiling" in m:
        print(f"\nTessera token ES256 keep-alive = {m['tessera_percent_of_ceiling']} % of the bare ceiling's req/s "
              f"(actix-web + rustls + josekit, no storage/audit)"
              + (f"; {m['tessera_percent_of_ceiling_by_cpu']} % by server CPU per token (the ceiling's CPU/token "
                 f"over Tessera's: robust to other load)" if "tessera_percent_of_ceiling_by_cpu" in m else "") + ".")
    print(f"results: {m.get('results_file')}")


def cmd_table(a):
    res = json.load(open(a.file))
    if a.markdown:
        print_markdown(res)
    else:
        print_table(res)


def print_markdown(res):
    """The table as Markdown, for docs/performance.md."""
    f = lambda v, d=2: "—" if v is None else f"{v:,.{d}f}"
    print("| scenario | req/s (1 core) | p50 ms | p99 ms | errors | server CPU µs/req | 2-core est/s | others % | target (2 cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in res["scenarios"]:
        cpu = s.get("server_cpu_us_per_request")
        est = 2e6 / cpu if cpu and "open_loop" not in s["name"] else None
        print(f"| {s['title']} | {f(s.get('rps'), 0)} | {f(s.get('p50_ms'))} | {f(s.get('p99_ms'))} | {s.get('errors')} | "
              f"{f(cpu, 1)} | {f(est, 0)} | {f(s.get('others_cpu_percent_of_machine'), 0)} | {s.get('target') or ''} |")
    print()
    print("| state | RSS | target |")
    print("|---|---:|---|")
    for s in res["memory"]:
        print(f"| {s['title']} | {s['rss_mb']:.1f} MB | {s.get('target') or ''} |")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("ssa-bodies")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--tessera", required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--software-id", default="demo-fintech-client")
    s.add_argument("--distinct-software", action="store_true")
    s.add_argument("--org-id", default="demo-org-0001")
    s.add_argument("--org-name", default="Tessera Dev Demo Fintech")
    s.add_argument("--roles", default="AISP")
    s.add_argument("--scope", default="accounts:read")
    s.set_defaults(f=cmd_ssa_bodies)

    for name, f in [("register", cmd_register), ("tokens", cmd_tokens), ("revoke", cmd_revoke),
                    ("introspect-check", cmd_introspect_check)]:
        s = sub.add_parser(name)
        s.add_argument("--url", required=True)
        s.add_argument("--cert", required=True)
        s.add_argument("--key", required=True)
        s.add_argument("--ca", required=True)
        s.set_defaults(f=f)
        if name == "register":
            s.add_argument("--ssa", required=True)
            s.add_argument("--scope", required=True)
            s.add_argument("--expect-scope")
        if name == "tokens":
            s.add_argument("--client-id", required=True)
            s.add_argument("--gateway-id", required=True)
            s.add_argument("--n", type=int, required=True)
            s.add_argument("--out", required=True)
        if name == "revoke":
            s.add_argument("--client-id", required=True)
            s.add_argument("--tokens", required=True)
        if name == "introspect-check":
            s.add_argument("--bodies", required=True)
            s.add_argument("--want", required=True)

    s = sub.add_parser("scenario")
    for arg in ["name", "title", "target", "server", "command", "load", "kind", "out", "loadavg", "load-cpu"]:
        s.add_argument("--" + arg, default="")
    s.add_argument("--cpu-before", type=int, required=True)
    s.add_argument("--cpu-after", type=int, required=True)
    s.add_argument("--clk-tck", type=int, default=100)
    s.add_argument("--machine-before", default="")
    s.add_argument("--machine-after", default="")
    s.set_defaults(f=cmd_scenario)

    s = sub.add_parser("memory")
    for arg in ["name", "title", "target", "out"]:
        s.add_argument("--" + arg, default="")
    s.add_argument("--rss-kb", type=int, required=True)
    s.add_argument("--clients", type=int, default=0)
    s.set_defaults(f=cmd_memory)

    s = sub.add_parser("assemble")
    s.add_argument("--dir", required=True)
    s.add_argument("--meta", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(f=cmd_assemble)

    s = sub.add_parser("table")
    s.add_argument("file")
    s.add_argument("--markdown", action="store_true")
    s.set_defaults(f=cmd_table)

    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
