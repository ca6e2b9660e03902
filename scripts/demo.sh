#!/bin/sh
# demo.sh: the quickstart behind `make demo`. Starts berthd on the default
# socket (unless one already answers there), creates busybox:latest from
# Debian's busybox-static through the import API, lists the images, and runs
# a container from it.
set -eu
PREFIX=${PREFIX:-/usr/local}
BERTH="$PREFIX/bin/berth"
BERTHD="$PREFIX/bin/berthd"
SOCK=${BERTH_SOCK:-/run/berth.sock}
H="unix://$SOCK"
here=$(cd "$(dirname "$0")" && pwd)

if ! "$BERTH" -H "$H" version >/dev/null 2>&1; then
    echo "starting berthd (log: /var/log/berthd.log)"
    nohup "$BERTHD" -H "$H" >>/var/log/berthd.log 2>&1 &
    i=0
    until "$BERTH" -H "$H" version >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "berthd did not come up; see /var/log/berthd.log" >&2; exit 1; }
        sleep 0.1
    done
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
sh "$here/mkrootfs-busybox.sh" "$rootfs"
echo "importing busybox:latest from $(readlink -f /bin/busybox)"
tar --numeric-owner -C "$rootfs" -c . | "$BERTH" -H "$H" import -c 'CMD ["sh"]' - busybox:latest
"$BERTH" -H "$H" images
echo
echo "running a container: berth run --rm busybox ..."
"$BERTH" -H "$H" run --rm busybox sh -c 'echo "hello from a Berth container: $(hostname), pid $$, $(uname -sr)"'
