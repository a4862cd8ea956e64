#!/usr/bin/env bash
# test/vm/image.sh CACHE [ARCH] — prints the path of the VM's base root
# file system (a directory: Debian bookworm ARCH, amd64 or arm64, with
# systemd and a kernel), built with mmdebstrap from Debian's packages when
# CACHE has none for this package list yet. The key is a hash of the
# architecture, test/vm/packages, this script and test/vm/guest/build/, so a
# change to any of them builds a new image; older ones of the architecture
# are removed. Needs root and mmdebstrap; a foreign ARCH also needs
# qemu-user registered with binfmt_misc (run.sh does that).
set -euo pipefail

cache=${1:?usage: image.sh CACHE [ARCH]}
arch=${2:-amd64}
case $arch in
amd64) kernel=linux-image-amd64 ;;
arm64) kernel=linux-image-arm64 ;;
*) echo "image.sh: ARCH $arch: amd64 or arm64" >&2; exit 1 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
mirror=${VM_MIRROR:-http://deb.debian.org/debian}
key=$( (echo "$arch"; cat "$here/packages" "$here/image.sh"; cd "$here/guest/build" && find . -type f -print0 | sort -z | xargs -0 sha256sum) |
	sha256sum | cut -c1-16)
out=$cache/rootfs-$arch-$key
if [ -d "$out" ] && [ -e "$out/etc/os-release" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$cache"
# A build killed half-way may leave mmdebstrap's /proc, /sys and /dev/pts
# mounted in its directory: never remove a tree with mounts in it.
abs=$(cd "$cache" && pwd)
if awk -v p="$abs/" 'index($2, p) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
	echo "image.sh: mounts left under $abs (a killed build?): umount them first" >&2
	exit 1
fi
rm -rf "$cache"/rootfs-"$arch"-*
pkgs=$( (grep -v '^#' "$here/packages" | grep -v '^$'; echo "$kernel") | paste -sd, -)
echo "vm-test: building the image (mmdebstrap, bookworm $arch: $pkgs)" >&2
start=$(date +%s)
# The essential hook puts the initramfs configuration in place before the
# kernel is installed (its mkinitramfs then holds virtio and ext4 only);
# the customize hook enables networkd and leaves chrony off (the clock
# test starts it when it wants NTP).
nice -n 19 mmdebstrap --mode=root --format=directory --variant=apt --architectures="$arch" --components=main \
	--include="$pkgs" \
	--essential-hook="sync-in '$here/guest/build' /" \
	--customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
	--customize-hook='chroot "$1" systemctl disable chrony.service' \
	--customize-hook='rm -f "$1"/etc/machine-id && touch "$1"/etc/machine-id' \
	--customize-hook='ls "$1"/boot/vmlinuz-* "$1"/boot/initrd.img-* >/dev/null' \
	bookworm "$out.part" "deb $mirror bookworm main" >&2
mv "$out.part" "$out"
echo "vm-test: image built in $(($(date +%s) - start)) s: $out ($(du -sh "$out" | cut -f1))" >&2
echo "$out"
