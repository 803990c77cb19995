#!/usr/bin/env bash
# The README's main command (fresh Debian 12, as root): installs what it needs (Debian packages
# only: scripts/deps.sh --demo), builds ldapbind and ldapbind-authd,
# then runs the demo (examples/demo.rs): a throwaway slapd true to the seed's glauth (passwords
# hashed, readable by nobody but the user), ldapbind-authd reading the demo's imapd.conf, a
# private Cyrus IMAP that loads ldapbind and hands the password check to the daemon, a login
# with imtest as the seed's user, the seed's missing-port mistake and the log line that explains
# it. Everything listens on 127.0.0.1 only and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run as root (it installs Debian packages; Cyrus master needs its cyrus user)" >&2
    exit 1
fi
scripts/deps.sh --demo
echo "demo.sh: building libldapbind.so and ldapbind-authd (release)"
cargo build --release --quiet --lib --bin ldapbind-authd
cargo build --release --quiet --example demo
echo
exec target/release/examples/demo
