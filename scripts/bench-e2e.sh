#!/bin/bash
# End-to-end latency and memory: starts a private Dovecot + Postfix + PostgreSQL on loopback high
# ports, runs `cargo bench --bench e2e` (1,000 mails over SMTP at 10/s → acknowledgement in the
# requester's Maildir; p50/p95/p99; daemon RSS idle and peak) and the pipeline benchmark on SQLite
# and PostgreSQL. Usage: scripts/bench-e2e.sh   (run as root; LOKET_BENCH_E2E_N and _RATE adjust)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TE=$ROOT/scripts/testenv
"$TE/install.sh"
DIR=$(mktemp -d /tmp/loket-e2e.XXXXXX)
chmod 755 "$DIR"
trap '"$TE/stop.sh" "$DIR/env-dir" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
IMAP_PORT=53143 SMTP_PORT=54525 LMTP_PORT=54424 PG_PORT=56432 TLS=0 "$TE/start.sh" "$DIR/env-dir" >/dev/null
# shellcheck source=/dev/null
. "$DIR/env-dir/env"
cd "$ROOT"
cargo bench --bench e2e
LOKET_BENCH_PG_URL=$LOKET_TEST_PG_URL cargo bench --bench pipeline
