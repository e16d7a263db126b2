#!/bin/bash
# Loket test environment: stop the private Dovecot, Postfix, PostgreSQL and fake identity provider
# started by start.sh DIR. Tolerates any of them being down already (or never started), then waits
# (30 s deadline) until their processes are gone and their ports are free.
# Usage: stop.sh DIR     (run as root; DIR is left in place: logs and mail stay readable)
set -eu

die() { echo "stop.sh: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: stop.sh DIR"
[ -d "$1" ] || { echo "stop.sh: $1 does not exist; nothing to stop" >&2; exit 0; }
D=$(cd "$1" && pwd -P)
[ -f "$D/testenv.conf" ] || { echo "stop.sh: $D/testenv.conf missing; nothing to stop" >&2; exit 0; }
# shellcheck source=/dev/null
. "$D/testenv.conf"
DEADLINE_S=30

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# pid_of FILE NAME...: the pid in FILE if that process is alive and its command is one of NAME.
# A zombie counts as gone: the daemons are children of PID 1, which may reap them only seconds later.
pid_of() {
    local f=$1 pid comm st n; shift
    [ -s "$f" ] || return 1
    pid=$(head -n 1 "$f" | tr -dc 0-9)
    [ -n "$pid" ] && comm=$(cat "/proc/$pid/comm" 2>/dev/null) && st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    st=${st##*) }
    case ${st%% *} in Z|X) return 1 ;; esac
    for n in "$@"; do [ "$comm" = "$n" ] && { echo "$pid"; return 0; }; done
    return 1
}
children_of() { awk -v p="$1" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null || true; }
comm_of() { local c; c=$(cat "/proc/$1/comm" 2>/dev/null) || return 1; echo "${c// /_}"; }
alive() {      # alive PID COMM: that process still runs (not a zombie) under the same command
    local st
    [ "$(comm_of "$1")" = "$2" ] && st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    case ${st%% *} in Z|X) return 1 ;; esac
}
TREE=""        # "pid:comm" of the three masters and all their descendants
add_tree() {
    local c
    TREE="$TREE $1:$(comm_of "$1" || echo '?')"
    for c in $(children_of "$1"); do add_tree "$c"; done
}

DOVECOT_PIDFILE=$D/dovecot-run/master.pid
POSTFIX_PIDFILE=$D/postfix/spool/pid/master.pid
PG_PIDFILE=$D/pg/postmaster.pid
IDP_PIDFILE=$D/idp.pid

# Ask all three to stop at once, then wait for all of them.
if pid=$(pid_of "$POSTFIX_PIDFILE" master); then
    add_tree "$pid"
    postfix -c "$D/postfix/etc" abort </dev/null >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
fi
if pid=$(pid_of "$DOVECOT_PIDFILE" dovecot); then
    add_tree "$pid"
    kill -TERM "$pid" 2>/dev/null || true          # what `doveadm stop` does, without its slow wait
fi
if pid=$(pid_of "$PG_PIDFILE" postgres postmaster); then
    add_tree "$pid"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$D/pg" -m immediate -W stop </dev/null >/dev/null 2>&1 \
        || kill -QUIT "$pid" 2>/dev/null || true   # SIGQUIT = immediate shutdown
fi
# The fake IdP: only the pid recorded in DIR/idp.pid, and only if it still runs fake_idp.py on DIR's config.
if [ -s "$IDP_PIDFILE" ]; then
    pid=$(head -n 1 "$IDP_PIDFILE" | tr -dc 0-9)
    if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "fake_idp.py --config $D/idp.json"; then
        add_tree "$pid"
        kill -TERM "$pid" 2>/dev/null || true
    fi
fi

PORTS="$IMAP_PORT $SMTP_PORT $LMTP_PORT $PG_PORT ${SUBMISSION_PORT:-} ${IDP_PORT:-}"
[ "${TLS:-0}" = 1 ] && PORTS="$PORTS $IMAPS_PORT"
busy() {       # prints the first thing still up
    local e p
    for e in $TREE; do alive "${e%%:*}" "${e#*:}" && { echo "process ${e%%:*} (${e#*:})"; return 0; }; done
    for p in $PORTS; do port_open "$p" && { echo "port $p"; return 0; }; done
    return 1
}

end=$((SECONDS + DEADLINE_S))
killed=0
while what=$(busy); do
    if [ $SECONDS -ge $end ]; then
        if [ "$killed" = 0 ]; then
            echo "stop.sh: $what still up after $DEADLINE_S s; killing the daemons of $D" >&2
            for e in $TREE; do if alive "${e%%:*}" "${e#*:}"; then kill -KILL "${e%%:*}" 2>/dev/null || true; fi; done
            killed=1
            end=$((SECONDS + 5))
            continue
        fi
        die "$what still up (a port held by something outside this environment?)"
    fi
    sleep 0.05
done
echo "stop.sh: test environment in $D stopped" >&2
