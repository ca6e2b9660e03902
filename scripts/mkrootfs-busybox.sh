#!/bin/sh
# mkrootfs-busybox.sh DIR: lay out a minimal root filesystem from Debian's
# busybox-static in DIR (created): /bin/busybox plus one symlink per applet,
# /etc/passwd and /etc/group with root and nobody, and the usual empty dirs.
set -eu
dir=${1:?usage: mkrootfs-busybox.sh DIR}
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkrootfs-busybox: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/root" \
         "$dir/home" "$dir/var" "$dir/usr/bin" "$dir/sbin"
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for a in $("$bb" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
