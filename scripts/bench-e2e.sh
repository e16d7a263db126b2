#!/bin/bash
# End-to-end latency and memory: starts a private Dovecot + Postfix + PostgreSQL on loopback high
# ports, runs `cargo bench --bench e2e` (requests over SMTP at 10, 50 and 100 a second for 60 s
# each → acknowledgement in the requester's Maildir, beside the lab's floor; p50/p95/p99, lost
# and doubled; daemon RSS) and then the pipeline benchmark on SQLite and PostgreSQL.
# Usage: scripts/bench-e2e.sh   (run as root)
# Env: LOKET_BENCH_E2E_RATES ("10,50,100") and LOKET_BENCH_E2E_SECS (60) adjust the run;
#      LOKET_BENCH_E2E_CONCURRENCY the outbox's outbound.concurrency (default 16);
#      LOKET_BENCH_LAB_DIR where the lab's servers keep their queues, mailboxes and database
#      (default /tmp; /dev/shm keeps the lab off the disk Loket's store writes to, which stays
#      in TMPDIR, /tmp by default; the PostgreSQL pipeline run then has its database there too);
#      the lab's PostgreSQL runs with its durable defaults (start.sh's PG_DURABLE=1);
#      BENCH_PIPELINE=0 skips the pipeline benchmark; IMAP_PORT SMTP_PORT LMTP_PORT PG_PORT
#      SUBMISSION_PORT IDP_PORT choose the servers' ports (defaults 53143 54525 54424 56432 54587
#      58080), so that two runs can coexist.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TE=$ROOT/scripts/testenv
"$TE/install.sh"
DIR=$(mktemp -d "${LOKET_BENCH_LAB_DIR:-/tmp}/loket-e2e.XXXXXX")
chmod 755 "$DIR"
trap '"$TE/stop.sh" "$DIR/env-dir" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
IMAP_PORT=${IMAP_PORT:-53143} SMTP_PORT=${SMTP_PORT:-54525} LMTP_PORT=${LMTP_PORT:-54424} PG_PORT=${PG_PORT:-56432} \
    SUBMISSION_PORT=${SUBMISSION_PORT:-54587} IDP_PORT=${IDP_PORT:-58080} TLS=0 PG_DURABLE=1 "$TE/start.sh" "$DIR/env-dir" >/dev/null
# shellcheck source=/dev/null
. "$DIR/env-dir/env"
cd "$ROOT"
cargo bench --bench e2e
if [ "${BENCH_PIPELINE:-1}" != 0 ]; then
    LOKET_BENCH_PG_URL=$LOKET_TEST_PG_URL cargo bench --bench pipeline
fi
