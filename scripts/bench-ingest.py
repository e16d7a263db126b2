#!/usr/bin/env python3
"""`loket ingest` per process, as an MTA pipes one mail: wall time from spawn to exit.

Usage: scripts/bench-ingest.py [-n RUNS] [--inbox NAME] LOKET [OTHER_LOKET…]

A binary may be given with environment variables of its own, `NAME=VALUE@LOKET` (e.g.
`LOKET_SQLITE_DRIVER=sqlx@target/release/loket` against the same binary with Loket's driver).

Each binary gets its own copy of the shipped `loket.toml` (all four desks; `seeds/`, `rules/` and
`templates/` linked from the repository) and its own SQLite store, migrated beforehand with
`loket migrate` (the steady state of an MTA pipe). Then RUNS rounds, each feeding every binary a
new mail on standard input (`--inbox hero` unless `--inbox NAME` names another of the four desks'
inboxes; each mail is an incident) and timing `LOKET --version` beside it (the
floor: process start and exit, no work); the binaries take turns within a round, so the machine's
load falls on all of them alike. Prints p50/p95/mean per binary and for the floor; every ingest
must exit 0 with `"action":"created"` (or the run stops).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Per inbox: the requester's domain, the inbox's address, a subject and a body (each an incident,
# so that the impact opinion is read too).
MAILS = {
    "hero": ("kemendag.go.id", "hero@kemendag.go.id", "Tidak bisa login aplikasi SIMPEG",
             "Saya tidak bisa login ke aplikasi SIMPEG sejak pagi ini, muncul pesan "
             "password salah padahal sudah benar. Mohon bantuannya."),
    "pusintek": ("kemenkeu.go.id", "servicedesk@kemenkeu.go.id", "VPN tidak bisa tersambung",
                 "Sejak pagi VPN kantor tidak bisa tersambung, muncul pesan authentication failed. "
                 "Seluruh pegawai di bagian kami tidak bisa bekerja dari rumah. Mohon bantuannya."),
    "djpb": ("kemenkeu.go.id", "hai.djpb@kemenkeu.go.id", "SAKTI error saat login",
             "Aplikasi SAKTI tidak bisa dibuka sejak pagi, muncul pesan error 500 setelah login. "
             "Mohon bantuannya karena kami harus mengajukan SPM hari ini."),
    "jateng": ("jatengprov.go.id", "hts@jatengprov.go.id", "Website dinas tidak bisa diakses",
               "Website dinas kami tidak bisa diakses sejak tadi malam, muncul pesan 502 Bad Gateway. "
               "Mohon segera dicek."),
}


def mail(n: int, inbox: str = "hero") -> bytes:
    domain, to, subject, body = MAILS[inbox]
    return (
        f"From: Pegawai {n} <pegawai{n}@{domain}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject} ({n})\r\n"
        f"Message-ID: <bench-ingest-{inbox}-{n}@{domain}>\r\n"
        "Date: Mon, 05 Jan 2026 09:00:00 +0700\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Selamat pagi,\r\n\r\n{body}\r\n\r\nTerima kasih.\r\n"
    ).encode()


def setup(spec: str, base: str, i: int) -> dict:
    own, binary = spec.split("@", 1) if "@" in spec else ("", spec)
    d = os.path.join(base, f"b{i}")
    os.makedirs(d)
    for name in ("seeds", "rules", "templates"):
        os.symlink(os.path.join(ROOT, name), os.path.join(d, name))
    with open(os.path.join(ROOT, "loket.toml")) as f:
        text = f.read()
    with open(os.path.join(d, "loket.toml"), "w") as f:
        f.write(text)
    env = dict(os.environ, LOKET_DATABASE_URL=f"sqlite://{d}/loket.db", LOKET_LOG="warn")
    env.update(kv.split("=", 1) for kv in own.split(",") if kv)
    cfg = os.path.join(d, "loket.toml")
    subprocess.run([binary, "--config", cfg, "migrate"], env=env, check=True, capture_output=True)
    return {"bin": binary, "name": spec, "cfg": cfg, "env": env, "times": []}


def timed(args, env, stdin: bytes):
    t0 = time.perf_counter()
    p = subprocess.run(args, env=env, input=stdin, capture_output=True)
    return time.perf_counter() - t0, p


def summary(name: str, times: list) -> str:
    ms = sorted(t * 1000 for t in times)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    return f"{name}: n={len(ms)} p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, mean {statistics.mean(ms):.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--inbox", choices=sorted(MAILS), default="hero", help="the inbox (and desk) the mails arrive at")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="loket-bench-ingest.") as base:
        runs = [setup(b, base, i) for i, b in enumerate(a.binaries)]
        floor = []
        for n in range(a.n):
            t, _ = timed([runs[0]["bin"], "--version"], os.environ, b"")
            floor.append(t)
            for r in runs:
                t, p = timed([r["bin"], "--config", r["cfg"], "ingest", "--inbox", a.inbox], r["env"], mail(n, a.inbox))
                if p.returncode != 0 or b'"created"' not in p.stdout:
                    sys.stderr.write(f"{r['bin']}: exit {p.returncode}: {p.stdout!r} {p.stderr!r}\n")
                    return 1
                r["times"].append(t)
        print(f"load average before/after: {os.getloadavg()}")
        print(summary("floor (loket --version)", floor))
        for r in runs:
            print(summary(r["name"], r["times"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
