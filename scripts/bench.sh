#!/usr/bin/env bash
# The benchmark of issue 7 in one command (see BENCHMARKS.md): installs the Debian packages it
# needs (as root, without prompts, starting no service), builds the release plugin, then runs
# benches/logins.rs: ldapbind through real libsasl2 against Debian's ldapdb, the wire limit and
# sasldb, all against one throwaway slapd on loopback that the benchmark starts and stops.
#
# Debian's ldapdb (libsasl2-modules-ldap) is fetched with `apt-get download` and unpacked under
# target/bench-deps/ unless the system has it already: installed, it would sit in the system
# plugin dir, where every other libsasl2 program on the machine loads it unconfigured and logs
# an error for it ("auxpropfunc error -7").
#
#   scripts/bench.sh                  # the full run (about 4 minutes on 2 cores)
#   scripts/bench.sh --quick          # a smoke run (about 30 seconds)
#   scripts/bench.sh --rounds 8 ...   # options: cargo bench --bench logins -- --help
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    libsasl2-2 libsasl2-modules libsasl2-modules-db sasl2-bin
    libldap-2.5-0 # what Debian's ldapdb links
    slapd ldap-utils binutils
)
missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench.sh: missing ${missing[*]}; run scripts/bench.sh as root to install them" >&2
        exit 1
    fi
    echo "bench.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    # Keep maintainer scripts from starting services: the benchmark runs its own slapd.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
system_ldapdb=/usr/lib/x86_64-linux-gnu/sasl2/libldapdb.so
if [ ! -e "$system_ldapdb" ] && [ -z "${LDAPBIND_BENCH_LDAPDB:-}" ]; then
    deps=$PWD/target/bench-deps
    so=$deps/root/usr/lib/x86_64-linux-gnu/sasl2/libldapdb.so
    if [ ! -e "$so" ]; then
        echo "bench.sh: fetching libsasl2-modules-ldap into $deps (not installing it)"
        mkdir -p "$deps"
        rm -f "$deps"/libsasl2-modules-ldap_*.deb
        # The same version as the installed libsasl2.
        version=$(dpkg-query -W -f='${Version}' libsasl2-2)
        (cd "$deps" && { apt-get download -qq "libsasl2-modules-ldap=$version" 2>/dev/null ||
            { apt-get update -qq && apt-get download -qq "libsasl2-modules-ldap=$version"; }; })
        dpkg-deb -x "$deps"/libsasl2-modules-ldap_*.deb "$deps/root"
    fi
    export LDAPBIND_BENCH_LDAPDB=$so
fi

if ! command -v cargo >/dev/null; then
    echo "bench.sh: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi

# The plugin as it is installed (target/release/libldapbind.so), then the benchmark, which
# loads a copy of the newest build of it.
cargo build --release --quiet --lib
exec cargo bench --quiet --bench logins -- "$@"
