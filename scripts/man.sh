#!/bin/sh
# The man pages, generated from --help (one source for both): man/ldapbind-check.1 and
# man/ldapbind-authd.8, plus the extra sections in man/*.h2m. tests/man.rs runs this into a
# temporary directory and compares; run it after changing a --help text:
#   cargo build --bins && scripts/man.sh man target/debug
set -eu
out=${1:-man}
bins=${2:-target/debug}
here=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/Cargo.toml" | head -n1)
# A fixed date keeps the pages reproducible (help2man honours SOURCE_DATE_EPOCH).
export SOURCE_DATE_EPOCH=1796083200
page() { # binary section name
    help2man --no-info --section "$2" --version-string "$version" --name "$3" \
        --include "$here/man/$1.h2m" --output "$out/$1.$2" "$bins/$1"
}
page ldapbind-check 1 "will a user's login work through ldapbind, and if not, why"
page ldapbind-authd 8 "check passwords for libsasl2 by binding to the directory as the user"
