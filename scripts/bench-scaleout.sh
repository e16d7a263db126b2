#!/bin/bash
# Throughput of 1 and of 3 `loket serve` instances sharing one PostgreSQL: N generated mails
# (scripts/gen_emails.py --seed 42) spread over 3 IMAP inboxes of a private Dovecot, then
# the time until every mail is a committed ticket or reply. Prints mails per second and the ratio.
# Usage: scripts/bench-scaleout.sh [N]   (default 3000; run as root; builds --release)
set -eu
N=${1:-3000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TE=$ROOT/scripts/testenv
"$TE/install.sh"
DIR=$(mktemp -d /tmp/loket-bench.XXXXXX)
chmod 755 "$DIR"
trap '"$TE/stop.sh" "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
IMAP_PORT=51143 SMTP_PORT=52525 LMTP_PORT=52424 PG_PORT=55432 TLS=0 PG_DURABLE=1 "$TE/start.sh" "$DIR/env-dir" >/dev/null
# shellcheck source=/dev/null
. "$DIR/env-dir/env"
(cd "$ROOT" && cargo build --release --quiet)
BIN=$ROOT/target/release/loket
python3 "$ROOT/scripts/gen_emails.py" "$DIR/mail" -n "$N" --seed 42 --to hero@desk.test >/dev/null

run() {
    local k=$1 db="bench_$1" tag="b$1"
    psql -q "$LOKET_TEST_PG_URL" -c "CREATE DATABASE $db" >/dev/null
    local url="${LOKET_TEST_PG_URL%/*}/$db"
    {
        echo "templates = \"$ROOT/templates\""
        echo "rules = \"$ROOT/rules\""
        echo "[storage]"; echo "url = \"$url\""; echo "max_connections = 8"
        echo "[outbound]"; echo "transport = \"file\""; echo "directory = \"$DIR/out-$k\""
        echo "[limits]"; echo "auto_replies_per_sender_per_hour = 1000000"
        echo "[[desk]]"; echo "id = \"hero\""; echo "name = \"HERO\""; echo "code = \"HERO\""
        echo "catalogue = \"$ROOT/seeds/hero.toml\""
        for i in 0 1 2; do
            echo "[[desk.inbox]]"; echo "name = \"in$i\""; echo "address = \"$tag-in$i@desk.test\""
            echo "[desk.inbox.imap]"; echo "host = \"127.0.0.1\""; echo "port = $LOKET_TEST_IMAP_PORT"; echo "tls = \"none\""
            echo "user = \"$tag-in$i@desk.test\""; echo "password_env = \"LOKET_TEST_MAIL_PASSWORD\""
            echo "processed_folder = \"Processed\""; echo "poll_interval_secs = 1"
        done
    } > "$DIR/loket-$k.toml"
    local i=0
    for f in "$DIR"/mail/*.eml; do
        doveadm -c "$LOKET_TEST_DOVECOT_CONF" save -u "$tag-in$((i % 3))@desk.test" < "$f"
        i=$((i + 1))
    done
    "$BIN" --config "$DIR/loket-$k.toml" migrate >/dev/null
    local start pids=()
    start=$(date +%s.%N)
    for _ in $(seq "$k"); do
        LOKET_LOG=warn "$BIN" --config "$DIR/loket-$k.toml" serve >>"$DIR/serve-$k.log" 2>&1 &
        pids+=($!)
    done
    while true; do
        n=$(psql -tA "$url" -c "SELECT COUNT(*) FROM messages WHERE direction = 'in'")
        [ "$n" -ge "$N" ] && break
        sleep 0.2
    done
    local end
    end=$(date +%s.%N)
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    python3 -c "print(f'{$N / ($end - $start):.0f}')"
}
one=$(run 1)
three=$(run 3)
echo "scale-out benchmark: $N mails over 3 IMAP inboxes, PostgreSQL, $(nproc) cores"
echo "  1 instance:  $one mails/s"
echo "  3 instances: $three mails/s"
python3 -c "print(f'  ratio 3/1:   {$three / $one:.2f}')"
