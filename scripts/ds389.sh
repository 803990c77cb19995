#!/usr/bin/env bash
# Fetches Debian's 389 Directory Server (389-ds-base and what it needs that is not installed)
# with `apt-get download` and unpacks it under target/ds389/root, for tests/common/ds389.rs.
# Nothing is installed: 389-ds-base depends on libsasl2-modules-gssapi-mit, which would put
# GSSAPI into the system plugin dir that every libsasl2 host on the machine (and every test's
# plugin dir) loads. The fixture runs the unpacked server from a private mount namespace in
# which the unpacked /usr overlays the system's. Run as root (scripts/deps.sh calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/ds389
root=$dest/root
[ -x "$root/usr/sbin/ns-slapd" ] && exit 0
echo "ds389.sh: fetching 389-ds-base into $dest (not installing it)"
rm -rf "$dest"
mkdir -p "$dest/debs" "$root"
# What installing it would add, and the Python modules dscreate imports.
mapfile -t pkgs < <(apt-get install -s --no-install-recommends 389-ds-base | awk '/^Inst /{print $2}')
for p in python3-psutil python3-argcomplete python3-distro python3-cryptography; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = installed ] || pkgs+=("$p")
done
(cd "$dest/debs" && { apt-get download -qq "${pkgs[@]}" 2>/dev/null ||
    { apt-get update -qq && apt-get download -qq "${pkgs[@]}"; }; })
for deb in "$dest"/debs/*.deb; do
    dpkg-deb -x "$deb" "$root"
done
# Listen on loopback only, from the first start on (dscreate starts the server itself).
sed -i '/^cn: config$/a nsslapd-listenhost: 127.0.0.1' "$root/usr/share/dirsrv/data/template-dse.ldif"
grep -q '^nsslapd-listenhost: 127.0.0.1$' "$root/usr/share/dirsrv/data/template-dse.ldif"
