#!/usr/bin/env bash
# Installs what building, testing and demonstrating ldapbind needs on Debian 12, as root,
# without prompts. Idempotent: installs only what is missing and runs `apt-get update` only then.
#
#   scripts/deps.sh          everything scripts/test.sh needs, cargo-nextest and cargo-deb included
#   scripts/deps.sh --demo   only what scripts/demo.sh needs: building the plugin and the demo,
#                            slapd, Cyrus IMAP and imtest (no cargo install)
#
# Starts no daemon and leaves none enabled:
# - slapd is preseeded not to configure itself;
# - a policy-rc.d that denies every start is in place while packages are unpacked (an existing
#   one is kept, ours is removed afterwards);
# - cyrus-imapd would be enabled to start at boot and listen on every interface: when this script
#   installs it, its system service is disabled again (and stopped if anything started it). The
#   tests and the demo run their own master in a temp dir.
# - samba (the tests' Active Directory domain controller, tests/common/samba.rs) would enable and
#   start smbd, nmbd and samba-ad-dc: their services are disabled again, like cyrus-imapd's. Only
#   samba, samba-dsdb-modules (the AD database), samba-vfs-modules (provisioning sets sysvol ACLs
#   with acl_xattr) and samba-ad-provision (provisioning data) are
#   installed: not samba-ad-dc (its service and winbind) nor the recommended extras.
# - cyrus-common needs a mail transport agent; when none is installed, dma (no daemon, no port)
#   is installed instead of Debian's default exim4 daemon. The tests install postfix (which
#   replaces dma), preseeded to "No configuration" and with its system service disabled.
set -euo pipefail

mode=test
case "${1:-}" in
    --demo) mode=demo ;;
    "") ;;
    *)
        echo "usage: scripts/deps.sh [--demo]" >&2
        exit 2
        ;;
esac

# The demo: libsasl2-dev for linking the fixtures (tests/common/sasl.rs), the mechanism
# plugins, slapd, Cyrus IMAP and imtest, unshare (the private /dev/log).
packages=(
    libsasl2-dev libsasl2-modules
    slapd
    cyrus-common cyrus-imapd cyrus-clients
    util-linux
)
if [ "$mode" = test ]; then
    packages+=(
        libsasl2-modules-db sasl2-bin ldap-utils
        # benches/authd.rs compiles its libldap wire-limit loop (benches/ldap_loop.c).
        libldap-dev
        dpkg-dev
        # tests/deb.rs: lintian on the package; tests/man.rs: the man pages from --help.
        lintian help2man
        valgrind gcc binutils openssl ca-certificates
        # tests/postfix.rs: a private Postfix instance (Debian's smtpd, chrooted) and swaks.
        postfix swaks
        # tests/common/samba.rs: a private Samba AD DC on a loopback address of its own.
        samba samba-dsdb-modules samba-vfs-modules samba-ad-provision iproute2
    )
fi

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing ${missing[*]}; run scripts/deps.sh${1:+ $1} as root to install them" >&2
        exit 1
    fi
    new_cyrus=no
    installed cyrus-imapd || new_cyrus=yes
    new_postfix=no
    [[ " ${missing[*]} " == *" postfix "* ]] && new_postfix=yes
    new_samba=no
    installed samba || new_samba=yes
    # cyrus-common depends on "default-mta | mail-transport-agent": pick one without a daemon
    # unless the machine already has an MTA.
    if [ "$new_postfix" = no ] && ! dpkg-query -W -f='${db:Status-Status} ${Provides}\n' 2>/dev/null |
        grep -q '^installed .*mail-transport-agent'; then
        missing+=(dma)
    fi
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    # Keep maintainer scripts from starting services (invoke-rc.d and deb-systemd-invoke ask
    # policy-rc.d; 101 = action forbidden).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$new_postfix" = yes ]; then
        # The tests run their own instance; the system's stays off, as cyrus-imapd's below.
        if command -v systemctl >/dev/null; then
            systemctl disable postfix.service >/dev/null 2>&1 || true
        fi
        update-rc.d postfix disable >/dev/null 2>&1 || true
    fi
    if [ "$new_cyrus" = yes ]; then
        # Not a system IMAP server: only our private masters (tests, demo) run. Keep the
        # package's service from starting at boot, and stop it should anything have started it.
        if command -v systemctl >/dev/null; then
            systemctl disable cyrus-imapd.service >/dev/null 2>&1 || true
            if [ -d /run/systemd/system ]; then
                systemctl stop cyrus-imapd.service >/dev/null 2>&1 || true
            fi
        fi
        update-rc.d cyrus-imapd disable >/dev/null 2>&1 || true
        if [ -s /run/cyrus-master.pid ]; then
            pid=$(cat /run/cyrus-master.pid)
            if [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = /usr/sbin/cyrmaster ]; then
                kill "$pid" 2>/dev/null || true
            fi
        fi
    fi
    if [ "$new_samba" = yes ]; then
        # Not a file server nor a domain controller of this machine: only the tests' private
        # samba (its own smb.conf, a loopback address of its own) runs.
        for svc in smbd nmbd samba-ad-dc; do
            if command -v systemctl >/dev/null; then
                systemctl disable "$svc.service" >/dev/null 2>&1 || true
                if [ -d /run/systemd/system ]; then
                    systemctl stop "$svc.service" >/dev/null 2>&1 || true
                fi
            fi
            update-rc.d "$svc" disable >/dev/null 2>&1 || true
        done
    fi
fi

# 389 Directory Server for tests/ds389.rs, unpacked under target/ds389, not installed.
"$(dirname "$0")/ds389.sh"

if ! command -v cargo >/dev/null; then
    echo "deps.sh: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
if [ "$mode" = demo ]; then
    exit 0
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "deps.sh: installing cargo-nextest"
    cargo install --quiet --locked cargo-nextest
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "deps.sh: installing cargo-deb (builds the .deb; takes a few minutes once)"
    cargo install --quiet --locked cargo-deb
fi

# libsasl2 2.1.27 (Debian 11's libsasl2-2 and libsasl2-modules), the last release with
# `pwcheck_method: auxprop-hashed`, unpacked into target/ for tests that load it with
# LD_LIBRARY_PATH (tests/common/sasl.rs, Libsasl2127). Fetched with a private apt configuration
# naming bullseye, verified with Debian's archive keyring; the system's apt setup is untouched
# and nothing is installed.
sasl_version=2.1.27+dfsg-2.1+deb11u1
sasl_dest="$(cd "$(dirname "$0")/.." && pwd)/target/libsasl2-2.1.27"
if [ ! -e "$sasl_dest/usr/lib/x86_64-linux-gnu/libsasl2.so.2" ]; then
    echo "deps.sh: fetching libsasl2 $sasl_version (Debian 11) into $sasl_dest"
    apt_tmp=$(mktemp -d)
    mkdir -p "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial" "$apt_tmp/debs"
    # As root apt downloads as its sandbox user _apt, which must reach the private directories.
    chmod 755 "$apt_tmp"
    if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
        chown _apt "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial" "$apt_tmp/debs"
    fi
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" \
        >"$apt_tmp/sources.list"
    apt_private=(
        -o "Dir::Etc::SourceList=$apt_tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_tmp/lists" -o "Dir::Cache=$apt_tmp/cache"
    )
    apt-get "${apt_private[@]}" -qq update
    (cd "$apt_tmp/debs" && apt-get "${apt_private[@]}" -qq download \
        "libsasl2-2=$sasl_version" "libsasl2-modules=$sasl_version")
    rm -rf "$sasl_dest.tmp"
    for deb in "$apt_tmp"/debs/*.deb; do
        dpkg-deb -x "$deb" "$sasl_dest.tmp"
    done
    rm -rf "$sasl_dest" "$apt_tmp"
    mv "$sasl_dest.tmp" "$sasl_dest"
fi
