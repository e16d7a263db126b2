#!/usr/bin/env python3
"""How long an IMAP IDLE client waits for a new mail on the lab's Dovecot: the floor under any
IDLE intake, Loket's included.

Usage: scripts/bench-idle-floor.py [-n ROUNDS]   (inside `scripts/testenv` servers: it reads
LOKET_TEST_DIR, LOKET_TEST_IMAP_PORT, LOKET_TEST_SMTP_PORT and LOKET_TEST_MAIL_PASSWORD, as
`. DIR/env` sets them)

Each round sends one mail over SMTP to a mailbox held in IDLE by this script (plain IMAP, no
Loket), then times three moments: the submission, the modification time of the file Dovecot's LMTP
wrote in the Maildir (delivery), and the `* N EXISTS` the IDLE client received (notification).
Prints p50/p95/max of delivery − submission and of notification − delivery.
"""

import argparse
import os
import smtplib
import socket
import statistics
import sys
import time
import uuid


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def line(f):
    got = f.readline()
    if not got:
        raise SystemExit("IMAP server closed the connection")
    return got.decode("utf-8", "replace").rstrip("\r\n")


def command(sock, f, tag, text):
    sock.sendall(f"{tag} {text}\r\n".encode())
    while True:
        got = line(f)
        if got.startswith(tag + " "):
            if not got.startswith(tag + " OK"):
                raise SystemExit(f"{text.split()[0]}: {got}")
            return


def find(maildir, subject):
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for name in os.listdir(d):
            path = os.path.join(d, name)
            try:
                with open(path, "rb") as fh:
                    if subject.encode() in fh.read(4096):
                        return os.stat(path).st_mtime
            except FileNotFoundError:
                continue
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    a = ap.parse_args()
    try:
        test_dir = os.environ["LOKET_TEST_DIR"]
        imap_port = int(os.environ["LOKET_TEST_IMAP_PORT"])
        smtp_port = int(os.environ["LOKET_TEST_SMTP_PORT"])
        password = os.environ["LOKET_TEST_MAIL_PASSWORD"]
    except KeyError as e:
        print(f"{e.args[0]} is not set: start scripts/testenv/start.sh DIR and `. DIR/env` first")
        return 2
    user = f"idle-{uuid.uuid4().hex[:8]}@example.test"
    local, domain = user.split("@")
    maildir = os.path.join(test_dir, "mail", domain, local, "Maildir")
    sock = socket.create_connection(("127.0.0.1", imap_port))
    f = sock.makefile("rb")
    line(f)  # greeting
    command(sock, f, "a1", f'LOGIN "{user}" "{password}"')
    command(sock, f, "a2", "SELECT INBOX")
    delivered, notified = [], []
    for k in range(a.n):
        sock.sendall(b"i IDLE\r\n")
        if not line(f).startswith("+"):
            raise SystemExit("IDLE refused")
        subject = f"IDLE floor {k} {uuid.uuid4().hex}"
        msg = f"From: bench@example.test\r\nTo: {user}\r\nSubject: {subject}\r\n\r\nfloor\r\n"
        submitted = time.time()
        with smtplib.SMTP("127.0.0.1", smtp_port) as s:
            s.sendmail("bench@example.test", [user], msg)
        while True:
            got = line(f)
            if got.endswith(" EXISTS"):
                exists = time.time()
                break
        sock.sendall(b"DONE\r\n")
        while not line(f).startswith("i "):
            pass
        mtime = None
        deadline = time.time() + 10
        while mtime is None and time.time() < deadline:
            mtime = find(maildir, subject)
        if mtime is None:
            raise SystemExit(f"{subject}: no file in {maildir}")
        delivered.append(mtime - submitted)
        notified.append(exists - mtime)
    sock.sendall(b"z LOGOUT\r\n")

    def show(name, xs):
        ms = [x * 1000 for x in xs]
        print(f"{name}: p50 {pct(ms, 0.5):.0f} ms, p95 {pct(ms, 0.95):.0f} ms, max {max(ms):.0f} ms, "
              f"mean {statistics.mean(ms):.0f} ms")

    print(f"IMAP IDLE on the lab's Dovecot, {a.n} mails one at a time, no Loket:")
    show("  delivery (SMTP submission -> file in the Maildir)", delivered)
    show("  notification (file in the Maildir -> * EXISTS to the IDLE client)", notified)
    return 0


if __name__ == "__main__":
    sys.exit(main())
