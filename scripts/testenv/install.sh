#!/bin/sh
# Loket test environment: install the Debian packages the integration tests need
# (Dovecot IMAP+LMTP, Postfix, PostgreSQL, swaks) if any is missing. Run as root.
# Idempotent: when everything is installed it only runs one dpkg-query (well under 1 s).
# The system daemons are not started by the install (a temporary policy-rc.d denies it);
# the test instances run privately from scripts/testenv/start.sh on their own ports.
set -eu

PKGS="dovecot-imapd dovecot-lmtpd postfix postgresql swaks chromium"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in
        ii*) ;;
        *) missing="$missing $p" ;;
    esac
done
if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: missing packages:$missing; run as root to install them" >&2
    exit 1
fi

echo "install.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive

# Postfix's postinst asks what kind of mail system this is: answer "No configuration".
debconf-set-selections <<'SEL'
postfix postfix/main_mailer_type select No configuration
postfix postfix/mailname string loket-test.invalid
SEL

# Keep the install from starting the system daemons on the standard ports (25, 143, 993, 5432).
# If the machine already has a policy-rc.d we leave it as it is.
tmp_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    tmp_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# temporary, from loket scripts/testenv/install.sh\nexit 101\n' > "$tmp_policy"
    chmod 755 "$tmp_policy"
    trap 'rm -f "$tmp_policy"' EXIT INT TERM
fi

apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing

# The PostgreSQL binaries live in /usr/lib/postgresql/<ver>/bin; check one is there.
if ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "install.sh: no /usr/lib/postgresql/*/bin/initdb after installing postgresql" >&2
    exit 1
fi
echo "install.sh: done" >&2
