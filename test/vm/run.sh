#!/usr/bin/env bash
# test/vm/run.sh — make vm-test: kioskd's package on a real Debian under
# real systemd in a VM (qemu-system-x86_64 or -aarch64, software emulation), with real
# power cuts (nbdkit's cache filter: a disk with a volatile write cache), a
# clock that lies, and an upgrade under load. test/vm/README.md says what
# each part proves. Needs root; tools missing here are installed from
# Debian with apt-get. CI runs it for amd64 (about 20 minutes on 2 cores).
#
#   VM_ARCH=amd64       the guest: amd64 (q35), or arm64 (virt, -cpu max; its
#                       image is built under qemu-user through binfmt_misc)
#   VM_CUTS=10          power cuts (the control run makes one more)
#   VM_CACHE=test/vm/.cache   where the built image is kept (gitignored)
#   VM_KEEP=1           keep the work directory (serial logs, disk image)
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)
cache=${VM_CACHE:-$root/test/vm/.cache}
arch=${VM_ARCH:-amd64}
case $arch in
amd64) qemu=qemu-system-x86_64 qemu_pkg=qemu-system-x86 ;;
arm64) qemu=qemu-system-aarch64 qemu_pkg=qemu-system-arm ;;
*) echo "vm-test: VM_ARCH=$arch: amd64 or arm64" >&2; exit 1 ;;
esac
[ "$(id -u)" = 0 ] || { echo "vm-test: needs root (mmdebstrap, mkfs of the image)" >&2; exit 1; }

# need TOOL PACKAGE: install PACKAGE from Debian when TOOL is missing.
apt_updated=
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "vm-test: installing $2 (for $1)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1; then
		if [ -z "$apt_updated" ]; then
			apt-get update -qq >/dev/null
			apt_updated=1
		fi
		apt-get install -y --no-install-recommends "$2" >/dev/null
	fi
	command -v "$1" >/dev/null 2>&1 || { echo "vm-test: $1 still missing after installing $2" >&2; exit 1; }
}
need mmdebstrap mmdebstrap
need "$qemu" "$qemu_pkg"
need nbdkit nbdkit
need mkfs.ext4 e2fsprogs
need chronyd chrony
need mosquitto mosquitto
need mosquitto_sub mosquitto-clients
need systemd-analyze systemd
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
	# mmdebstrap runs the foreign image's maintainer scripts under
	# qemu-user: the kernel must hand it the guest's binaries.
	need qemu-aarch64-static qemu-user-static
	need arch-test arch-test # mmdebstrap's check that the host runs the architecture
	[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
		cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
	fi
fi
nbdkit --dump-config >/dev/null && nbdkit file --filter=cache --help >/dev/null 2>&1 ||
	{ echo "vm-test: nbdkit has no file plugin with the cache filter" >&2; exit 1; }
# Installing chrony here must never leave a chronyd setting this host's
# clock: the test runs its own with -x (never touches the clock).
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl disable --now chrony.service >/dev/null 2>&1 || true
fi

work=$(mktemp -d /var/tmp/vm-test.XXXXXX)
if [ "${VM_KEEP:-0}" = 1 ]; then
	echo "vm-test: work directory $work (kept: VM_KEEP=1)"
else
	trap 'rm -rf "$work"' EXIT
fi

# The packages: the tree's build, as make package makes it (the same
# nfpm, pinned in the Makefile, and packaging/nfpm.yaml), and a newer one for
# the upgrade (the same source, version +vm.upgrade: apt sees it as newer).
# Built into the work directory, not dist/: a make package running at the
# same time (CI) is not disturbed.
version=$(packaging/version.sh)
nfpm_version=$(sed -n 's/^NFPM_VERSION *?= *//p' Makefile)
[ -n "$nfpm_version" ] || { echo "vm-test: no NFPM_VERSION in the Makefile" >&2; exit 1; }
export SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
deb() {
	local v=$1 d=$work/build-$1
	mkdir -p "$d"
	GOOS=linux GOARCH=$arch CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$v" -o "$d/kioskd" ./cmd/kioskd
	ln -sf kioskd "$d/kioskctl"
	DEB_ARCH=$arch DEB_VERSION=$v BIN_DIR=$d go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version" \
		package --config packaging/nfpm.yaml --packager deb --target "$work/" >>"$work/package.log" 2>&1 ||
		{ cat "$work/package.log"; exit 1; }
	[ -s "$work/kioskd_${v}_$arch.deb" ] || { echo "vm-test: nfpm made no $work/kioskd_${v}_$arch.deb" >&2; exit 1; }
}
echo "vm-test: packages (kioskd $version and $version+vm.upgrade, $arch)"
deb "$version"
deb "$version+vm.upgrade"
# The central side runs on the host: the reference ingest and the agent.
CGO_ENABLED=0 go build -trimpath -o "$work/kiosk-ingest" ./cmd/kiosk-ingest
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags '-s -w' -o "$work/vm-agent" ./test/vm/agent
go build -o "$work/vmtest" ./test/vm

# The image: the cached base, plus the agent, the packages and this tree's
# guest files, made into an ext4 file system without mounting anything.
base=$(test/vm/image.sh "$cache" "$arch")
t0=$(date +%s)
mkdir "$work/rootfs"
cp -a "$base/." "$work/rootfs/"
cp -a test/vm/guest/run/. "$work/rootfs/"
install -m 0755 "$work/vm-agent" "$work/rootfs/usr/local/sbin/vm-agent"
install -d -m 0755 "$work/rootfs/root/vm"
cp "$work"/kioskd_*.deb "$work/rootfs/root/vm/"
kernel=$(ls "$work"/rootfs/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$work"/rootfs/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
nice -n 19 mkfs.ext4 -q -F -L vmroot -d "$work/rootfs" "$work/disk.img" 3G >/dev/null
rm -rf "$work/rootfs"
echo "vm-test: disk image made in $(($(date +%s) - t0)) s"

nice -n 19 "$work/vmtest" -work "$work" -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -disk "$work/disk.img" \
	-arch "$arch" -ingest "$work/kiosk-ingest" -unit systemd/kioskd.service \
	-old-version "$version" -new-version "$version+vm.upgrade" -cuts "${VM_CUTS:-10}" -started "$start"
