#!/bin/bash
# Loket test environment: start PRIVATE Dovecot (IMAP with IDLE + LMTP), Postfix (SMTP and
# authenticated submission), PostgreSQL and a fake OAuth2 identity provider (fake_idp.py) on
# loopback high ports, everything (config, data, logs) under DIR.
# Nothing under /etc/dovecot, /etc/postfix or the system PostgreSQL cluster is used.
#
# Usage: start.sh DIR        (run as root; DIR must be missing or empty, e.g. DIR=$(mktemp -d))
# Env:   IMAP_PORT (31143) SMTP_PORT (32525) LMTP_PORT (32424) PG_PORT (35432)
#        SUBMISSION_PORT (32587): Postfix submission, AUTH required (SASL through Dovecot: PLAIN, LOGIN,
#          XOAUTH2, OAUTHBEARER)
#        IDP_PORT (38080): the fake identity provider (Microsoft's and Google's token, device-code and
#          revoke endpoints; Dovecot's oauth2 passdb checks bearer tokens at its /introspect)
#        LOKET_TEST_MAIL_PASSWORD (testpass)  the password of every mail user
#        TLS=1 (optional): self-signed cert, STARTTLS on IMAP_PORT + implicit TLS on IMAPS_PORT (31993)
#        PG_BIN (optional): PostgreSQL bin dir; default the newest /usr/lib/postgresql/<ver>/bin
#        PG_DURABLE=1 (optional): PostgreSQL with its durable defaults (fsync, synchronous_commit,
#          full_page_writes on), for benchmarks; without it the test cluster skips them (tests only
#          need correctness, and the suite runs faster)
# Mail users: ANY address at desk.test, example.test and other.test exists (static passdb/userdb,
# regexp virtual_mailbox_maps); mail to any other domain is refused at RCPT time. Every user logs in
# with the password (PLAIN/LOGIN) or with a bearer token the fake IdP issued for that user (XOAUTH2,
# OAUTHBEARER; IMAP tokens need an IMAP scope, SMTP AUTH tokens an SMTP scope).
# Writes DIR/env: `export NAME=value` lines for the test suite (see the end of this file).
# Stop with: stop.sh DIR
set -eu

die() { echo "start.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: start.sh DIR"
[ "$(id -u)" = 0 ] || die "must run as root (the daemons drop privileges themselves)"

HERE=$(cd "$(dirname "$0")" && pwd)
IMAP_PORT=${IMAP_PORT:-31143}
SMTP_PORT=${SMTP_PORT:-32525}
LMTP_PORT=${LMTP_PORT:-32424}
PG_PORT=${PG_PORT:-35432}
SUBMISSION_PORT=${SUBMISSION_PORT:-32587}
IDP_PORT=${IDP_PORT:-38080}
IMAPS_PORT=${IMAPS_PORT:-31993}
TLS=${TLS:-0}
PG_DURABLE=${PG_DURABLE:-0}
MAIL_PASSWORD=${LOKET_TEST_MAIL_PASSWORD:-testpass}
DOMAINS="desk.test example.test other.test"
DEADLINE_S=30

PORTS="$IMAP_PORT $SMTP_PORT $LMTP_PORT $PG_PORT $SUBMISSION_PORT $IDP_PORT"
[ "$TLS" = 1 ] && PORTS="$PORTS $IMAPS_PORT"
for p in $PORTS; do
    case "$p" in ''|*[!0-9]*) die "port '$p' is not a number" ;; esac
    [ "$p" -ge 1024 ] && [ "$p" -le 65535 ] || die "port $p out of range 1024-65535"
done
[ "$(printf '%s\n' $PORTS | sort -u | wc -l)" = "$(printf '%s\n' $PORTS | wc -l)" ] || die "ports must differ: $PORTS"
case "$MAIL_PASSWORD" in ''|*[!A-Za-z0-9._+-]*) die "LOKET_TEST_MAIL_PASSWORD may only use [A-Za-z0-9._+-]" ;; esac

# ---------- the directory ----------
mkdir -p "$1"
D=$(cd "$1" && pwd -P)
case "$D" in *[!A-Za-z0-9._/+-]*) die "DIR '$D' has characters the daemon configs cannot take (use e.g. mktemp -d)" ;; esac
if [ -n "$(ls -A "$D")" ]; then
    die "$D is not empty (an earlier run's environment?). Stop it with '$HERE/stop.sh $D', remove it, or use a fresh DIR=\$(mktemp -d /tmp/loket-test.XXXXXX)"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $PORTS; do
    port_open "$p" && die "port $p on 127.0.0.1 is already in use (another test environment? pick other IMAP_PORT/SMTP_PORT/LMTP_PORT/PG_PORT)"
done

command -v dovecot >/dev/null && command -v postfix >/dev/null || die "dovecot/postfix missing: run $HERE/install.sh"
PY=$(command -v python3) || die "python3 missing (the fake identity provider needs it): run $HERE/install.sh"
if [ -z "${PG_BIN:-}" ]; then
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || die "PostgreSQL not found under /usr/lib/postgresql/*/bin: run $HERE/install.sh"

# Mailbox owner: a dedicated system user (Dovecot refuses uid 0 / uids < first_valid_uid).
id vmail >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmail
id postgres >/dev/null 2>&1 || die "no postgres user: run $HERE/install.sh"
VUID=$(id -u vmail); VGID=$(id -g vmail)

chmod 0755 "$D"          # mktemp -d gives 0700; vmail and postgres must traverse it
for u in vmail postgres; do
    runuser -u "$u" -- test -x "$D" || die "user $u cannot reach $D: make $D and its parent directories traversable (chmod 755), or use a DIR under /tmp"
done
cd "$D"                  # postgres tools complain if they cannot read the current directory

# Remember what stop.sh needs before anything is started (a failed start is stopped with it).
cat > "$D/testenv.conf" <<CONF
# written by start.sh, read by stop.sh
IMAP_PORT=$IMAP_PORT
SMTP_PORT=$SMTP_PORT
LMTP_PORT=$LMTP_PORT
PG_PORT=$PG_PORT
SUBMISSION_PORT=$SUBMISSION_PORT
IDP_PORT=$IDP_PORT
IMAPS_PORT=$IMAPS_PORT
TLS=$TLS
PG_BIN=$PG_BIN
CONF

started=0
initdb_pid=""
on_exit() {
    rc=$?
    if [ -n "$initdb_pid" ]; then wait "$initdb_pid" 2>/dev/null || true; fi
    if [ "$rc" != 0 ] && [ "$started" = 1 ]; then
        echo "start.sh: start failed; stopping what was started (logs stay in $D)" >&2
        "$HERE/stop.sh" "$D" >&2 || true
    fi
}
trap on_exit EXIT

mkdir -p "$D/mail" "$D/dovecot-run" "$D/dovecot-state" "$D/postfix/etc" "$D/postfix/spool" "$D/postfix/data" "$D/pg" "$D/pg-sock"
chown vmail:vmail "$D/mail"
chown postfix:postfix "$D/postfix/data"
chown postgres:postgres "$D/pg" "$D/pg-sock"
chmod 0700 "$D/pg"
: > "$D/pg.log"; chown postgres:postgres "$D/pg.log"

# ---------- Dovecot ----------
if [ "$TLS" = 1 ]; then
    command -v openssl >/dev/null || die "TLS=1 needs the openssl command (apt-get install openssl)"
    mkdir -p "$D/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
        -keyout "$D/tls/key.pem" -out "$D/tls/cert.pem" 2>/dev/null
    SSL_CONF="ssl = yes
ssl_cert = <$D/tls/cert.pem
ssl_key = <$D/tls/key.pem"
    IMAPS_LISTENER="port = $IMAPS_PORT
    address = 127.0.0.1"
else
    SSL_CONF="ssl = no"
    IMAPS_LISTENER="port = 0"
fi
cat > "$D/dovecot.conf" <<CONF
# Single-file Dovecot 2.3 config written by loket scripts/testenv/start.sh; nothing from /etc/dovecot is read.
instance_name = loket-test-$IMAP_PORT
base_dir = $D/dovecot-run
state_dir = $D/dovecot-state
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
$SSL_CONF
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
# A failed login answers at once (default: 2 s), and no auth penalty (below): every test comes from
# 127.0.0.1, and Postfix gives up on Dovecot's SASL after 10 s.
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = $VUID
last_valid_uid = $VUID
mail_location = maildir:$D/mail/%d/%n/Maildir
mail_uid = $VUID
mail_gid = $VGID
# Any user exists, all with the same password (Postfix only accepts the test domains).
passdb {
  driver = static
  mechanisms = plain login
  args = password=$MAIL_PASSWORD
}
# XOAUTH2/OAUTHBEARER: the oauth2 passdb asks the fake IdP (RFC 7662 introspection) whether the
# token is active, for this user and for the protocol's scope (see oauth2-imap.conf.ext).
protocol smtp {
  passdb {
    driver = oauth2
    mechanisms = xoauth2 oauthbearer
    args = $D/oauth2-smtp.conf.ext
  }
}
userdb {
  driver = static
  # allow_all_users: a userdb lookup (LMTP) needs no passdb lookup, which oauth2 cannot do
  args = uid=$VUID gid=$VGID home=$D/mail/%d/%n allow_all_users=yes
}
namespace inbox {
  inbox = yes
}
# IDLE: changes are noticed through inotify at once; this is the fallback poll.
mailbox_idle_check_interval = 1 secs
# Tests open many connections at once.
default_client_limit = 2000
protocol imap {
  mail_max_userip_connections = 200
  passdb {
    driver = oauth2
    mechanisms = xoauth2 oauthbearer
    args = $D/oauth2-imap.conf.ext
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    $IMAPS_LISTENER
  }
  process_limit = 500
  client_limit = 1000
}
service imap {
  process_limit = 500
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
protocol lmtp {
  postmaster_address = postmaster@desk.test
}
# SASL for Postfix's submission service: its requests carry service=smtp ("protocol smtp" above)
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# Auth penalty off: after a failed login Dovecot would delay the next ones from the same IP (2, 4, 8 s)
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
CONF
# One file per protocol; they differ only in the scope the token must carry. Debian's
# 2.3.19.1+deb12u7 requires ALL words of `scope` in the introspection answer's scope, and the
# providers' scope names share none, so the fake IdP adds the pseudo-scopes imap/smtp to its
# answers (service_scopes in idp.json). Read when the auth process starts.
for svc in imap smtp; do
cat > "$D/oauth2-$svc.conf.ext" <<OAUTH
introspection_mode = post
introspection_url = http://127.0.0.1:$IDP_PORT/introspect
client_id = dovecot
client_secret = dovecot-secret
username_attribute = username
active_attribute = active
active_value = true
scope = $svc
timeout_msecs = 5000
OAUTH
done

# ---------- the fake identity provider (scripts/testenv/fake_idp.py) ----------
# Users: any address at the test domains. Clients: the two below, and those tests register
# themselves (POST /_admin/client), one per test, so that parallel tests share no grant.
cat > "$D/idp.json" <<JSON
{
  "host": "127.0.0.1", "port": $IDP_PORT,
  "access_ttl": 3599, "device_interval": 1, "ms_token_length": 1800,
  "users": [], "user_domains": [$(printf '"%s", ' $DOMAINS | sed 's/, $//')],
  "introspection_clients": {"dovecot": "dovecot-secret"},
  "clients": {
    "0d5c9e3b-2c3d-4e5f-9a01-234567890abc": {"provider": "microsoft", "public": true},
    "loket-lab.apps.googleusercontent.com": {"provider": "google", "secret": "google-secret"}
  },
  "google_service_accounts": {},
  "google_device_allowed_scopes": ["openid", "email", "profile"],
  "service_scopes": {
    "imap": ["https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/IMAP.AccessAsApp",
             "https://mail.google.com/"],
    "smtp": ["https://outlook.office.com/SMTP.Send", "https://outlook.office.com/SMTP.SendAsApp",
             "https://mail.google.com/"]}
}
JSON

# ---------- Postfix (own config_directory; chroot off; logs to a file) ----------
P=$D/postfix
cat > "$P/etc/main.cf" <<CONF
# written by loket scripts/testenv/start.sh
compatibility_level = 3.6
queue_directory = $P/spool
data_directory = $P/data
# keep the Debian binaries / postfix-files
meta_directory = /etc/postfix
myhostname = mail.desk.test
mydomain = desk.test
myorigin = desk.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# only the virtual domains are accepted; anything else is refused at RCPT time
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = permit
virtual_mailbox_domains = ${DOMAINS// /, }
virtual_mailbox_maps = regexp:$P/etc/vmailbox
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
local_recipient_maps =
relay_domains =
relayhost =
default_transport = error:outbound mail disabled in tests
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_banner = \$myhostname ESMTP test
biff = no
maillog_file = $D/postfix.log
maillog_file_prefixes = $D
alias_maps =
alias_database =
append_dot_mydomain = no
# SASL for the submission port, through Dovecot's auth socket (absolute path: chroot is off)
smtpd_sasl_type = dovecot
smtpd_sasl_path = $D/dovecot-run/auth-postfix
smtpd_sasl_security_options = noanonymous
smtpd_sasl_auth_enable = no
# "AUTH XOAUTH2 <base64>" with a Microsoft-sized token (1.5-2.5 KB) is longer than the default 2048
line_length_limit = 16384
# retry deferred mail (e.g. while Dovecot was down) quickly
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
CONF
# any local part at the test domains (regexp tables are case-insensitive)
cat > "$P/etc/vmailbox" <<MAP
/^[^@]+@(desk|example|other)\.test\$/ OK
MAP
cat > "$P/etc/master.cf" <<CONF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF

# Stop/start just Postfix (tests stop SMTP to check that outbound mail waits in the outbox).
# Each waits (30 s deadline) until the SMTP port is closed / accepts connections.
{
    echo '#!/bin/bash'
    echo "# Usage: smtp-ctl.sh stop|start   (only the Postfix of the Loket test environment in $D)"
    echo "# Each waits (${DEADLINE_S} s deadline) until the SMTP port is closed / accepts connections."
    echo 'set -eu'
    echo "D=$D SMTP_PORT=$SMTP_PORT DEADLINE_S=$DEADLINE_S"
    cat <<'CTL'
P=$D/postfix
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
master_alive() {   # a zombie (exited, not yet reaped by PID 1) counts as gone
    local pid st
    pid=$(tr -dc 0-9 < "$P/spool/pid/master.pid" 2>/dev/null) && [ -n "$pid" ] || return 1
    st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    st=${st##*) }
    case ${st%% *} in Z|X) return 1 ;; esac
}
end=$((SECONDS + DEADLINE_S))
case "${1:-}" in
stop)
    if master_alive; then postfix -c "$P/etc" abort </dev/null >>"$D/postfix-ctl.log" 2>&1 || true; fi
    while master_alive || port_open "$SMTP_PORT"; do
        [ $SECONDS -lt $end ] || { echo "smtp-ctl.sh: Postfix did not stop within $DEADLINE_S s" >&2; exit 1; }
        sleep 0.05
    done ;;
start)
    if ! master_alive; then
        postfix -c "$P/etc" start </dev/null >>"$D/postfix-ctl.log" 2>&1 \
            || { echo "smtp-ctl.sh: postfix start failed; see $D/postfix.log" >&2; tail -n 20 "$D/postfix.log" >&2; exit 1; }
    fi
    until port_open "$SMTP_PORT"; do
        [ $SECONDS -lt $end ] || { echo "smtp-ctl.sh: SMTP port $SMTP_PORT not open within $DEADLINE_S s" >&2; exit 1; }
        sleep 0.05
    done ;;
*) echo "usage: smtp-ctl.sh stop|start" >&2; exit 2 ;;
esac
CTL
} > "$D/smtp-ctl.sh"
chmod 0755 "$D/smtp-ctl.sh"

# ---------- start the daemons (stdio never points at the caller's terminal or pipe) ----------
started=1
"$PY" "$HERE/fake_idp.py" --config "$D/idp.json" </dev/null >>"$D/idp.log" 2>&1 &
echo $! > "$D/idp.pid"
# initdb (0.8 s) runs while Postfix does its first-start setup (2 s).
runuser -u postgres -- "$PG_BIN/initdb" -D "$D/pg" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 \
    </dev/null >"$D/pg-initdb.log" 2>&1 &
initdb_pid=$!
ulimit -n 65536 2>/dev/null || true   # Dovecot wants fds for default_client_limit
if ! dovecot -c "$D/dovecot.conf" </dev/null >>"$D/dovecot-start.log" 2>&1; then
    cat "$D/dovecot-start.log" >&2
    die "dovecot failed to start; see $D/dovecot.log"
fi
if ! postfix -c "$P/etc" start </dev/null >>"$D/postfix-ctl.log" 2>&1; then
    cat "$D/postfix-ctl.log" >&2
    die "postfix failed to start; see $D/postfix.log (postfix is silent without a tty: try script -qec 'postfix -c $P/etc check' /dev/null)"
fi
if ! wait "$initdb_pid"; then initdb_pid=""; cat "$D/pg-initdb.log" >&2; die "initdb failed"; fi
initdb_pid=""
pg_durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
if [ "$PG_DURABLE" = 1 ]; then pg_durability=""; fi
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$D/pg" -l "$D/pg.log" -W \
    -o "-p $PG_PORT -k $D/pg-sock -c listen_addresses=127.0.0.1 $pg_durability -c max_connections=300" \
    start </dev/null >>"$D/pg-ctl.log" 2>&1 || { cat "$D/pg-ctl.log" >&2; die "pg_ctl start failed; see $D/pg.log"; }

# ---------- wait until every port accepts TCP connections ----------
end=$((SECONDS + DEADLINE_S))
for p in $PORTS; do
    until port_open "$p"; do
        [ $SECONDS -lt $end ] || die "port $p did not accept connections within $DEADLINE_S s (logs: $D/dovecot.log $D/postfix.log $D/pg.log $D/idp.log)"
        sleep 0.05
    done
done
# PostgreSQL listens before it accepts queries (e.g. during recovery); wait for that too.
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; do
    [ $SECONDS -lt $end ] || die "PostgreSQL on port $PG_PORT not ready within $DEADLINE_S s (log: $D/pg.log)"
    sleep 0.05
done

# ---------- the environment for the test suite ----------
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
    echo "# Loket test environment in $D (written by scripts/testenv/start.sh; stop with scripts/testenv/stop.sh $D)"
    echo "export LOKET_TEST_DIR=$(q "$D")"
    echo "export LOKET_TEST_IMAP_HOST=127.0.0.1"
    echo "export LOKET_TEST_IMAP_PORT=$IMAP_PORT"
    echo "export LOKET_TEST_SMTP_PORT=$SMTP_PORT"
    echo "export LOKET_TEST_SUBMISSION_PORT=$SUBMISSION_PORT"
    echo "export LOKET_TEST_IDP_URL=$(q "http://127.0.0.1:$IDP_PORT")"
    echo "export LOKET_TEST_LMTP_PORT=$LMTP_PORT"
    echo "export LOKET_TEST_PG_PORT=$PG_PORT"
    echo "export LOKET_TEST_PG_URL=$(q "postgres://postgres@127.0.0.1:$PG_PORT/postgres")"
    echo "export LOKET_TEST_MAIL_PASSWORD=$(q "$MAIL_PASSWORD")"
    echo "export LOKET_TEST_MAIL_DOMAINS=$(q "$DOMAINS")"
    echo "export LOKET_TEST_DOVECOT_CONF=$(q "$D/dovecot.conf")"
    echo "export LOKET_TEST_POSTFIX_CONF_DIR=$(q "$P/etc")"
    echo "export LOKET_TEST_SMTP_STOP=$(q "$D/smtp-ctl.sh stop")"
    echo "export LOKET_TEST_SMTP_START=$(q "$D/smtp-ctl.sh start")"
    if [ "$TLS" = 1 ]; then
        echo "export LOKET_TEST_IMAPS_PORT=$IMAPS_PORT"
        echo "export LOKET_TEST_TLS_CERT=$(q "$D/tls/cert.pem")"
    fi
} > "$D/env.tmp"
mv "$D/env.tmp" "$D/env"
echo "start.sh: test environment up in $D (IMAP $IMAP_PORT, SMTP $SMTP_PORT, submission $SUBMISSION_PORT, LMTP $LMTP_PORT, PostgreSQL $PG_PORT, IdP $IDP_PORT); env: $D/env" >&2
