#!/usr/bin/env python3
"""One mail at a time into a watched Maildir: the time from its rename into `new/` until its
acknowledgement is written (`transport = "file"`), for each `loket` binary given, the binaries
taking turns. No servers: `loket serve` on SQLite (durable) in a fresh directory per binary.

    python3 scripts/bench-maildir-latency.py [-n 20] BIN [BIN...]

Prints p50/p95/max per binary. Mails are spaced by a random 0.2-0.7 s (seeded), so that they land
at every phase of a poll interval.
"""
import argparse, os, random, statistics, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(d):
    return f'''templates = "{REPO}/templates"
rules = "{REPO}/rules"
[storage]
url = "sqlite://{d}/loket.db"
[outbound]
transport = "file"
directory = "{d}/out"
[security]
token_secret_file = "{d}/token-secret"
[[desk]]
id = "hero"
name = "HERO"
code = "HERO"
catalogue = "{REPO}/seeds/hero.toml"
[[desk.inbox]]
name = "hero"
address = "hero@desk.test"
maildir = "{d}/inbox"
'''


def mail(i):
    return (f"From: user{i}@example.test\r\nTo: hero@desk.test\r\nSubject: Printer {i} rusak\r\n"
            f"Message-ID: <lat-{i}-{time.time_ns()}@example.test>\r\n\r\nPrinter di lantai {i} rusak.\r\n")


class Daemon:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="maildir-latency.", dir=os.environ.get("LOKET_BENCH_KEEP"))
        for sub in ("inbox/new", "inbox/cur", "inbox/tmp", "out"):
            os.makedirs(f"{self.dir}/{sub}")
        with open(f"{self.dir}/loket.toml", "w") as f:
            f.write(config(self.dir))
        self.log = open(f"{self.dir}/serve.log", "w")
        self.proc = subprocess.Popen([binary, "--config", f"{self.dir}/loket.toml", "serve"],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, "LOKET_LOG": "warn"})
        self.sent = 0
        # Started: one mail through before the measured ones.
        self.one()

    def acks(self):
        return sum(1 for n in os.listdir(f"{self.dir}/out") if n.endswith(".eml"))

    def one(self):
        i = self.sent
        tmp, new = f"{self.dir}/inbox/tmp/{i:06}", f"{self.dir}/inbox/new/{i:06}"
        with open(tmp, "w") as f:
            f.write(mail(i))
        t0 = time.monotonic()
        os.rename(tmp, new)
        deadline = t0 + 30
        while self.acks() <= i:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit(f"no acknowledgement for mail {i}: see {self.dir}/serve.log")
            time.sleep(0.001)
        self.sent += 1
        return time.monotonic() - t0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("bins", nargs="+")
    a = ap.parse_args()
    rng = random.Random(7)
    daemons = [Daemon(b) for b in a.bins]
    times = [[] for _ in a.bins]
    for _ in range(a.n):
        for k, d in enumerate(daemons):
            time.sleep(rng.uniform(0.2, 0.7))
            times[k].append(d.one() * 1000)
    for d in daemons:
        d.stop()
    for b, t in zip(a.bins, times):
        t.sort()
        p95 = t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
        print(f"{b}: {len(t)} mails, rename -> acknowledgement written: p50 {statistics.median(t):.1f} ms, "
              f"p95 {p95:.1f} ms, max {t[-1]:.1f} ms")


if __name__ == "__main__":
    main()
