#!/usr/bin/env bash
# A Debian 13 (trixie) root holding Debian's own libreswan 5.2 packages: the independent
# RFC 5723 (IKE session resumption) peer of tests/interop/test_libreswan.py. Debian 12 packages
# only libreswan 4.10, which has no resumption; mmdebstrap fetches trixie's packages into DIR
# without touching the host's apt sources (never add trixie to them).
#
# usage: make-libreswan-root.sh [DIR]
#   DIR defaults to $IKECORE_LIBRESWAN_ROOT, else /var/cache/ikecore/trixie-libreswan
#   (the path tests/interop/libreswan.py looks at; a CI cache can keep it between runs).
# Idempotent: a root that carries the stamp of this recipe and whose pluto runs is kept.
# The root is built in DIR.partial and renamed, so an interrupted build never looks valid.
# Needs root, mmdebstrap and access to the Debian mirror ($IKECORE_DEBIAN_MIRROR).
set -euo pipefail

DIR=${1:-${IKECORE_LIBRESWAN_ROOT:-/var/cache/ikecore/trixie-libreswan}}
MIRROR=${IKECORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=libreswan,libnss3-tools,iproute2,procps
# Bump RECIPE when PACKAGES or the steps change: a cached root with another stamp is rebuilt.
RECIPE=1
STAMP=.ikecore-libreswan-root
PLUTO=/usr/libexec/ipsec/pluto

valid() {   # $1: root; the stamp matches this recipe and its pluto reports libreswan >= 5.2
    local root=$1 version
    [ -f "$root/$STAMP" ] && grep -qx "recipe=$RECIPE" "$root/$STAMP" || return 1
    version=$(chroot "$root" "$PLUTO" --version 2>&1) || return 1
    # "Libreswan 5.2" (the Debian build may append its own suffix)
    [[ $version =~ [Ll]ibreswan[[:space:]]+(v)?([0-9]+)\.([0-9]+) ]] || return 1
    local major=${BASH_REMATCH[2]} minor=${BASH_REMATCH[3]}
    (( major > 5 || (major == 5 && minor >= 2) ))
}

already_there() {
    valid "$DIR" || return 1
    echo "libreswan root already there: $DIR ($(grep '^libreswan=' "$DIR/$STAMP"))"
}
already_there && exit 0
[ "$(id -u)" = 0 ] || { echo "make-libreswan-root.sh: needs root (chroot, device nodes)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "make-libreswan-root.sh: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
mkdir -p "$(dirname "$DIR")"
# one build at a time (parallel test runs); whoever waited finds the root made
exec 9>"$DIR.lock"
flock 9
already_there && exit 0

PARTIAL=$DIR.partial
rm -rf "$PARTIAL"
started=$SECONDS
# --variant=apt: essential packages plus apt; no recommends (no systemd units needed: pluto is
# started by hand).
mmdebstrap --quiet --variant=apt --include="$PACKAGES" trixie "$PARTIAL" "$MIRROR"
# the test harness creates one directory per pluto under /lsw in the root
mkdir -p "$PARTIAL/lsw"
{
    echo "recipe=$RECIPE"
    echo "suite=trixie"
    echo "mirror=$MIRROR"
    echo "libreswan=$(chroot "$PARTIAL" dpkg-query -W -f '${Version}' libreswan)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$PARTIAL/$STAMP"
valid "$PARTIAL" || { echo "make-libreswan-root.sh: the built root's pluto does not run or is older than 5.2" >&2; exit 1; }
rm -rf "$DIR"
mv "$PARTIAL" "$DIR"
echo "libreswan root built in $((SECONDS - started)) s: $DIR ($(grep '^libreswan=' "$DIR/$STAMP"), $(du -sh "$DIR" | cut -f1))"
