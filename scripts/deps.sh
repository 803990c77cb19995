#!/usr/bin/env bash
# Installs what building and testing ldapbind needs on Debian 12, as root, without prompts.
# Idempotent: installs only what is missing and runs `apt-get update` only then.
# Starts no daemon: slapd is preseeded not to configure itself, and policy-rc.d blocks
# invoke-rc.d while packages are unpacked (tests start their own slapd in a temp dir).
set -euo pipefail

packages=(
    libsasl2-dev libsasl2-modules libsasl2-modules-db sasl2-bin
    slapd ldap-utils
    valgrind gcc binutils openssl ca-certificates
)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing ${missing[*]}; run scripts/deps.sh as root to install them" >&2
        exit 1
    fi
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    # Keep maintainer scripts from starting services (a no-op where nothing would start).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "deps.sh: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "deps.sh: installing cargo-nextest"
    cargo install --quiet --locked cargo-nextest
fi
