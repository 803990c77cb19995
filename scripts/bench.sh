#!/usr/bin/env bash
# The benchmarks of issues 7, 10 and 14 in one command (see BENCHMARKS.md): installs the Debian
# packages they need (as root, without prompts, starting no service), builds the release plugin,
# then runs benches/logins.rs (ldapbind through real libsasl2 against Debian's ldapdb, the wire
# limit and sasldb) and benches/authd.rs (ldapbind-authd against Debian's saslauthd -a ldap, the
# plugin against a libldap loop, a fresh process's first login), all against throwaway slapds on
# loopback that the benchmarks start and stop.
#
# Debian's ldapdb (libsasl2-modules-ldap) is fetched with `apt-get download` and unpacked under
# target/bench-deps/ unless the system has it already: installed, it would sit in the system
# plugin dir, where every other libsasl2 program on the machine loads it unconfigured and logs
# an error for it ("auxpropfunc error -7").
#
#   scripts/bench.sh                  # the full run (about 7 minutes on 2 cores)
#   scripts/bench.sh --quick          # a smoke run (about a minute)
#   scripts/bench.sh --rounds 8 ...   # options given to both: cargo bench --bench logins -- --help
#                                     # and cargo bench --bench authd -- --help
#   scripts/bench.sh --only authd     # one of them (logins or authd)
#   scripts/bench.sh --baseline-ref 6303864   # also measure that commit's plugin and daemon in
#                                     # the same rounds (benches/authd.rs --baseline DIR): built
#                                     # here in a temporary git worktree under target/
#   scripts/bench.sh --baseline DIR   # the same with a DIR holding libldapbind.so and ldapbind-authd
set -euo pipefail
cd "$(dirname "$0")/.."

# The same Debian packages as the tests (libsasl2, slapd, ...; libldap, which Debian's ldapdb
# links, comes with ldap-utils), installed the same way: no prompt, no service started.
scripts/deps.sh
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

only=(logins authd)
baseline_ref=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only=("$2"); shift 2 ;;
        --baseline-ref) baseline_ref=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

# The plugin as it is installed (target/release/libldapbind.so), then the benchmarks, which load
# a copy of the newest build of it (authd's also builds ldapbind-authd and benches/ldap_loop.c).
cargo build --release --quiet --lib

# The baseline: that commit built in a worktree of its own (removed afterwards) with a target
# dir of its own under target/, seeded from this one's release build so that only what changed
# is compiled; its plugin and daemon are kept in target/baseline-<commit>/.
if [ -n "$baseline_ref" ]; then
    commit=$(git rev-parse --short=12 "$baseline_ref^{commit}")
    out=$PWD/target/baseline-$commit
    if [ ! -e "$out/libldapbind.so" ] || [ ! -e "$out/ldapbind-authd" ]; then
        src=$PWD/target/baseline-src-$commit
        build=$PWD/target/baseline-build
        if [ ! -d "$build/release" ]; then
            mkdir -p "$build"
            cp -a target/release "$build/"
        fi
        git worktree remove --force "$src" 2>/dev/null || true
        git worktree add --detach --quiet "$src" "$commit"
        trap 'git worktree remove --force "$src" 2>/dev/null || true' EXIT
        echo "bench.sh: building the baseline $commit ($(git log -1 --format=%s "$commit" | cut -c1-60)...)"
        (cd "$src" && CARGO_TARGET_DIR=$build cargo build --release --quiet --lib --bins)
        mkdir -p "$out"
        cp "$build/release/libldapbind.so" "$build/release/ldapbind-authd" "$out/"
        git worktree remove --force "$src"
        trap - EXIT
    fi
    args+=(--baseline "$out")
fi

for bench in "${only[@]}"; do
    cargo bench --quiet --bench "$bench" -- ${args[@]+"${args[@]}"}
done
