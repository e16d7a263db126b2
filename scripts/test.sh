#!/bin/bash
# Loket's whole test suite: installs what the test environment needs (scripts/testenv/install.sh),
# starts private Dovecot + Postfix + PostgreSQL in a fresh temp dir (scripts/testenv/start.sh),
# runs `cargo test --all-targets --features server-tests "$@"` from the repository root with
# DIR/env sourced (unit tests, the `golden` binary, the server-backed `it` binary, the benches'
# smoke runs), and always stops the environment afterwards. Exits with cargo's status.
# (Plain `cargo test` runs the unit and golden tests only and needs no servers.)
# Run as root. Env: KEEP_TESTENV=1 keeps the temp dir (logs, mailboxes) after the run;
# IMAP_PORT SMTP_PORT LMTP_PORT PG_PORT IMAPS_PORT SUBMISSION_PORT IDP_PORT choose other ports
# (see scripts/testenv/start.sh).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TE=$ROOT/scripts/testenv

"$TE/install.sh"

DIR=$(mktemp -d /tmp/loket-test.XXXXXX)
cleanup() {
    rc=$?
    trap - EXIT INT TERM
    "$TE/stop.sh" "$DIR" || echo "test.sh: stopping the test environment in $DIR failed" >&2
    if [ "${KEEP_TESTENV:-0}" = 1 ]; then
        echo "test.sh: KEEP_TESTENV=1: kept $DIR (logs: dovecot.log postfix.log pg.log)" >&2
    else
        rm -rf "$DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# TLS=1: Dovecot also offers STARTTLS and implicit TLS (a self-signed certificate), so the
# suite tests Loket's TLS modes too.
export TLS="${TLS:-1}"
if ! "$TE/start.sh" "$DIR"; then
    echo "test.sh: starting the test environment failed; log tails follow" >&2
    for f in dovecot.log postfix.log pg.log pg-initdb.log; do
        if [ -s "$DIR/$f" ]; then
            echo "----- $DIR/$f (last 30 lines) -----" >&2
            tail -n 30 "$DIR/$f" >&2
        fi
    done
    exit 1
fi

# shellcheck source=/dev/null
. "$DIR/env"
cd "$ROOT"
set +e
cargo test --all-targets --features server-tests "$@"
rc=$?
set -e
exit "$rc"
