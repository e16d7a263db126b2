#!/bin/bash
# Outbox throughput to the local Postfix: starts a private Dovecot + Postfix + PostgreSQL on
# loopback high ports and runs `cargo bench --bench outbox` (5,000 queued mails delivered by
# Loket's outbox worker, beside a bare lettre loop sending the same mails at the same
# concurrency before and after it).
# Usage: scripts/bench-outbox.sh   (run as root)
# Env: LOKET_BENCH_OUTBOX_N (5000), LOKET_BENCH_OUTBOX_CONCURRENCY (16), LOKET_BENCH_OUTBOX_SYNC
#      (full | normal), LOKET_BENCH_OUTBOX_ROUNDS=1 (the earlier round shape, for comparison); IMAP_PORT SMTP_PORT LMTP_PORT PG_PORT SUBMISSION_PORT IDP_PORT choose the
#      servers' ports (defaults 63143 64525 64424 56433 64587 58081), so that runs can coexist.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TE=$ROOT/scripts/testenv
"$TE/install.sh"
DIR=$(mktemp -d /tmp/loket-outbox.XXXXXX)
chmod 755 "$DIR"
trap '"$TE/stop.sh" "$DIR/env-dir" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
IMAP_PORT=${IMAP_PORT:-63143} SMTP_PORT=${SMTP_PORT:-64525} LMTP_PORT=${LMTP_PORT:-64424} PG_PORT=${PG_PORT:-56433} \
    SUBMISSION_PORT=${SUBMISSION_PORT:-64587} IDP_PORT=${IDP_PORT:-58081} TLS=0 "$TE/start.sh" "$DIR/env-dir" >/dev/null
# shellcheck source=/dev/null
. "$DIR/env-dir/env"
cd "$ROOT"
cargo bench --bench outbox
