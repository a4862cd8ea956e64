#!/usr/bin/env bash
# packaging/check.sh DIST — what `make package-check` (and CI) checks on the
# packages `make package` left in DIST:
#   1. systemd-analyze verify on the unit; systemd-analyze security exposure ≤ 4.0;
#      the syscalls armhf kioskd makes (qemu-arm -strace) pass its SystemCallFilter=
#   2. armhf and arm64 kioskd/kioskctl start under qemu-user: -version, -h
#   3. sizes, against the targets armhf kioskd ≤ 15 MB, each .deb ≤ 8 MB
#   4. dpkg-deb: fields, file list, conffiles
#   5. each .deb installed, reinstalled (upgrade path), removed and purged in
#      a throwaway root (overlay of /, else a hard-linked copy) with its
#      maintainer scripts run chrooted there
# Needs root (apt-get, mount, chroot). Tools missing here are installed with
# apt-get; nothing is skipped: a check that cannot run fails.
set -euo pipefail

DIST=${1:-dist}
cd "$(dirname "$0")/.."
UNIT=${KIOSKD_UNIT:-systemd/kioskd.service}
MAX_EXPOSURE=40        # tenths: 4.0
MAX_BIN=$((15 * 1000 * 1000))
MAX_DEB=$((8 * 1000 * 1000))

failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	failures=$((failures + 1))
}
die() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "package-check needs root (apt-get, mount, chroot)"

# need TOOL PACKAGE: install PACKAGE from Debian when TOOL is missing.
apt_updated=
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "installing $2 (for $1)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "$2" >/dev/null 2>&1; then
		if [ -z "$apt_updated" ]; then
			apt-get update -qq >/dev/null
			apt_updated=1
		fi
		apt-get install -y --no-install-recommends "$2" >/dev/null
	fi
	command -v "$1" >/dev/null 2>&1 || die "$1 still missing after installing $2"
}
need systemd-analyze systemd
need dpkg-deb dpkg
need qemu-arm-static qemu-user-static
need qemu-aarch64-static qemu-user-static

mb() { awk -v n="$1" 'BEGIN { printf "%.2f MB", n / 1000000 }'; }

debs=()
for a in armhf arm64; do
	d=$(ls -t "$DIST"/kioskd_*_"$a".deb 2>/dev/null | head -1 || true)
	[ -n "$d" ] || die "no $DIST/kioskd_*_$a.deb: run make package"
	[ -x "$DIST/$a/kioskd" ] && [ -x "$DIST/$a/kioskctl" ] || die "no $DIST/$a/kioskd, kioskctl: run make package"
	debs+=("$d")
done

# ---------------------------------------------------------------- 1. unit
step "systemd unit"
systemd-analyze --version | head -1
# verify wants ExecStart= to exist: check a copy pointing at an executable
# here (the installed unit is verified again inside the throwaway root).
tmp=$(mktemp -d)
roots=()
cleanup() {
	for r in "${roots[@]}"; do
		umount "$r/merged" 2>/dev/null || true
		rm -rf "$r"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
sed 's#^ExecStart=/usr/bin/kioskd#ExecStart=/bin/true#' "$UNIT" >"$tmp/kioskd.service"
if out=$(systemd-analyze verify "$tmp/kioskd.service" 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify $UNIT"
else
	fail "systemd-analyze verify $UNIT: $out"
fi
# Logs go to the journal, never to files on the SD card.
if grep -nE '^(StandardOutput|StandardError)=(file|append|truncate):|^LogsDirectory=' "$UNIT"; then
	fail "$UNIT writes logs to files"
else
	ok "no log files in $UNIT (stdout/stderr → journal)"
fi
sec=$(systemd-analyze security --offline=yes --threshold=$MAX_EXPOSURE "$UNIT" 2>&1) && secrc=0 || secrc=$?
exposure=$(printf '%s\n' "$sec" | grep -E 'Overall exposure level' || true)
[ -n "$exposure" ] || fail "systemd-analyze security printed no exposure level: $sec"
printf '%s\n' "$sec" | grep -E '^✗' || true
echo "$exposure"
if [ "$secrc" = 0 ]; then
	ok "exposure within 4.0"
else
	fail "exposure over 4.0 (systemd-analyze security exit $secrc)"
fi

# The syscalls kioskd makes must pass the unit's SystemCallFilter= (with
# SystemCallErrorNumber=EPERM a blocked one fails quietly at run time: with
# adjtimex blocked the clock would never count as synchronised). The filter
# lines apply in order, as systemd applies them: the first allow list is
# the base, a "~" line takes out, a later plain line puts back.
expand_group() {
	systemd-analyze syscall-filter "$1" | sed -e 's/^ *//' -e '/^#/d' -e '/^$/d' | grep -vxF -- "$1" |
		while read -r x; do
			case $x in @*) expand_group "$x" ;; *) echo "$x" ;; esac
		done
}
expand_list() {
	local x
	for x in "$@"; do
		case $x in @*) expand_group "$x" ;; *) echo "$x" ;; esac
	done
}
allowed=$tmp/allowed
: >"$allowed"
first=1
while IFS= read -r line; do
	v=${line#SystemCallFilter=}
	if [[ $v == "~"* ]]; then
		[ "$first" = 1 ] && die "$UNIT: the first SystemCallFilter= must be an allow list for this check"
		# shellcheck disable=SC2086 # a list of names
		expand_list ${v#"~"} | sort -u >"$tmp/out"
		comm -23 "$allowed" "$tmp/out" >"$tmp/next"
	else
		# shellcheck disable=SC2086
		{ cat "$allowed"; expand_list $v; } | sort -u >"$tmp/next"
	fi
	mv "$tmp/next" "$allowed"
	first=0
done < <(grep '^SystemCallFilter=' "$UNIT")
[ -s "$allowed" ] || fail "$UNIT: no SystemCallFilter= allow list"
sc=$tmp/sc
mkdir -p "$sc"
printf '%s\n' 'device_id = "kiosk-syscalls"' "state_dir = \"$sc/state\"" '[event]' 'id = "evt-syscalls"' \
	'[control]' "socket = \"$sc/control.sock\"" '[mqtt]' 'broker = "tcp://127.0.0.1:9"' 'allow_insecure = true' \
	>"$sc/k.toml"
qemu-arm-static -strace "$DIST/armhf/kioskd" -config "$sc/k.toml" >"$sc/strace" 2>&1 &
kpid=$!
for _ in $(seq 150); do
	[ -S "$sc/control.sock" ] && break
	sleep 0.2
done
if [ -S "$sc/control.sock" ]; then
	qemu-arm-static "$DIST/armhf/kioskctl" -socket "$sc/control.sock" tap 042F51B2712380 >/dev/null ||
		fail "syscall trace: the tap failed"
	sleep 2 # a tick or two of the tap loop (adjtimex)
	qemu-arm-static "$DIST/armhf/kioskctl" -socket "$sc/control.sock" status >/dev/null ||
		fail "syscall trace: status failed"
else
	fail "syscall trace: kioskd under qemu-arm made no control socket: $(tail -c 2000 "$sc/strace")"
fi
kill -TERM "$kpid" 2>/dev/null || true
wait "$kpid" || fail "syscall trace: kioskd under qemu-arm did not exit 0 on SIGTERM"
grep -oE '(^|[^a-z_0-9])[0-9]+ [a-z_][a-z_0-9]*[(]' "$sc/strace" | sed -E 's/.* ([a-z_0-9]+)[(]$/\1/' |
	sort -u >"$sc/used"
echo "armhf kioskd made $(wc -l <"$sc/used") distinct syscalls through start, tap, status, SIGTERM"
grep -qx adjtimex "$sc/used" || fail "syscall trace saw no adjtimex: is the trace working?"
# fchown: provisioning gives a file written as root to the state
# directory's owner; under the unit kioskd never runs as root.
blocked=$(comm -23 "$sc/used" "$allowed" | grep -vxE 'fchown|fchown32' || true)
if [ -n "$blocked" ]; then
	fail "syscalls kioskd makes but $UNIT's SystemCallFilter= blocks: $(echo "$blocked" | tr '\n' ' ')"
else
	ok "every syscall kioskd made passes $UNIT's SystemCallFilter="
fi

# ------------------------------------------------------------ 2. qemu-user
step "binaries under qemu-user"
for a in armhf arm64; do
	case $a in armhf) qemu=qemu-arm-static ;; arm64) qemu=qemu-aarch64-static ;; esac
	for c in kioskd kioskctl; do
		bin=$DIST/$a/$c
		file_arch=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')   # ELF e_machine: 2800 arm, b700 aarch64
		case $a/$file_arch in armhf/2800 | arm64/b700) ;; *) fail "$bin: ELF machine $file_arch is not $a" ;; esac
		if v=$("$qemu" "$bin" -version 2>&1) && [[ $v == *"$c"* ]]; then
			ok "$a $c -version: $v"
		else
			fail "$a $c -version: $v"
		fi
		if h=$("$qemu" "$bin" -h 2>&1) && [[ $h == *"usage: $c"* ]]; then
			ok "$a $c -h"
		else
			fail "$a $c -h: $h"
		fi
	done
done
# The armhf binary must be ARMv6 (every Pi): Go records GOARM in the build info.
if info=$(go version -m "$DIST/armhf/kioskd" 2>&1) && grep -q 'GOARM=6' <<<"$info"; then
	ok "armhf kioskd built with GOARM=6"
else
	fail "armhf kioskd not built with GOARM=6: $(grep -E 'GOARM|GOARCH' <<<"$info" | tr '\n' ' ')"
fi

# ------------------------------------------------------------------ 3. sizes
step "sizes"
for a in armhf arm64; do
	for c in kioskd kioskctl; do
		echo "$a $c: $(mb "$(stat -L -c %s "$DIST/$a/$c")") (stripped)"
	done
done
# The size targets are figures to report; PACKAGE_CHECK_STRICT_SIZES=1
# makes a missed one fail the check.
target() {
	if [ "$2" -le "$3" ]; then
		ok "$1 $(mb "$2") ≤ $(mb "$3")"
	elif [ "${PACKAGE_CHECK_STRICT_SIZES:-0}" = 1 ]; then
		fail "$1 $(mb "$2") > $(mb "$3")"
	else
		echo "TARGET MISSED: $1 $(mb "$2") > $(mb "$3") (PACKAGE_CHECK_STRICT_SIZES=1 makes this fail)"
	fi
}
target "armhf kioskd" "$(stat -c %s "$DIST/armhf/kioskd")" $MAX_BIN
for d in "${debs[@]}"; do
	target "$(basename "$d")" "$(stat -c %s "$d")" $MAX_DEB
done

# ---------------------------------------------------------------- 4. dpkg-deb
step "package contents"
want_files="./usr/bin/kioskd ./usr/bin/kioskctl ./usr/lib/systemd/system/kioskd.service ./etc/kioskd/kioskd.toml ./usr/share/doc/kioskd/install.md"
for d in "${debs[@]}"; do
	a=${d##*_}
	a=${a%.deb}
	dpkg-deb --info "$d" >/dev/null || fail "$d: dpkg-deb cannot read it"
	[ "$(dpkg-deb -f "$d" Package)" = kioskd ] || fail "$d: Package is not kioskd"
	[ "$(dpkg-deb -f "$d" Architecture)" = "$a" ] || fail "$d: Architecture is not $a"
	echo "$(basename "$d"): Version $(dpkg-deb -f "$d" Version)"
	list=$(dpkg-deb -c "$d")
	printf '%s\n' "$list" | awk '{ print "  " $1, $2, $6 }'
	for f in $want_files; do
		grep -qE " $f( -> .*)?\$" <<<"$list" || fail "$d lacks $f"
	done
	grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/kioskd$' <<<"$list" || fail "$d: /usr/bin/kioskd not 0755 root:root"
	grep -qE '^l.* \./usr/bin/kioskctl -> (/usr/bin/)?kioskd$' <<<"$list" || fail "$d: /usr/bin/kioskctl is not a symlink to kioskd"
	conffiles=$(dpkg-deb -I "$d" conffiles 2>/dev/null || true)
	[ "$conffiles" = /etc/kioskd/kioskd.toml ] || fail "$d: conffiles are '$conffiles', want /etc/kioskd/kioskd.toml"
	for s in postinst prerm postrm; do
		dpkg-deb -I "$d" "$s" >/dev/null 2>&1 || fail "$d has no $s"
	done
	# the packaged unit is the one in the tree
	x=$(mktemp -d -p "$tmp")
	dpkg-deb -x "$d" "$x"
	cmp -s "$x/usr/lib/systemd/system/kioskd.service" "$UNIT" || fail "$d: unit differs from $UNIT"
	ok "$(basename "$d") contents"
done

# ------------------------------------------------------- 5. throwaway root
# newroot DIR: a copy-on-write view of / in DIR/merged, so dpkg and the
# maintainer scripts find what a Debian system has (useradd,
# deb-systemd-helper, a dpkg database) and the host stays untouched.
newroot() {
	local r=$1
	mkdir -p "$r/upper" "$r/work" "$r/merged"
	if [ "${PACKAGE_CHECK_NO_OVERLAY:-0}" != 1 ] &&
		mount -t overlay overlay -o "lowerdir=/,upperdir=$r/upper,workdir=$r/work" "$r/merged" 2>/dev/null; then
		echo "throwaway root: overlay of / at $r/merged"
		return 0
	fi
	# No overlayfs (e.g. in some containers): hard links for /usr (dpkg
	# replaces files by rename, never in place), real copies of what the
	# scripts write.
	echo "throwaway root: overlay not possible here; a hard-linked copy at $r/merged"
	local m=$r/merged
	cp -al /usr "$m/usr" || die "cannot hard-link /usr into $m (another file system?)"
	cp -a /etc "$m/etc"
	mkdir -p "$m/var/lib" "$m/var/cache" "$m/var/log" "$m/run" "$m/tmp" "$m/proc" "$m/dev"
	cp -a /var/lib/dpkg "$m/var/lib/dpkg"
	[ -d /var/lib/systemd ] && cp -a /var/lib/systemd "$m/var/lib/systemd"
	for l in bin sbin lib lib64 lib32; do
		[ -L "/$l" ] && cp -a "/$l" "$m/$l"
	done
	chmod 1777 "$m/tmp"
}

step "install, upgrade, remove, purge in a throwaway root"
for d in "${debs[@]}"; do
	a=${d##*_}
	a=${a%.deb}
	r=$(mktemp -d /var/tmp/kioskd-root.XXXXXX)
	roots+=("$r")
	newroot "$r"
	R=$r/merged
	# A kiosk image's state: none of ours yet, systemd not running (so the
	# scripts enable but start nothing, as in an image build).
	rm -rf "$R/var/lib/kioskd" "$R/etc/kioskd" "$R/run/systemd/system"
	chroot "$R" sh -c 'getent passwd kioskd >/dev/null' && die "$R: a kioskd user exists already (from the host?)"
	dpkg --root="$R" --add-architecture "$a"
	cp "$d" "$R/tmp/"
	deb=/tmp/$(basename "$d")
	if ! out=$(chroot "$R" dpkg -i "$deb" 2>&1); then
		fail "$a: dpkg -i: $out"
		continue
	fi
	ok "$a: installed; maintainer scripts ran"
	chroot "$R" dpkg -s kioskd | grep -q '^Status: install ok installed' || fail "$a: dpkg -s: not installed"
	chroot "$R" getent passwd kioskd | grep -q ':/var/lib/kioskd:/usr/sbin/nologin$' || fail "$a: user kioskd: $(chroot "$R" getent passwd kioskd)"
	for g in spi gpio i2c; do
		chroot "$R" id -nG kioskd | tr ' ' '\n' | grep -qx "$g" || fail "$a: kioskd not in group $g"
	done
	[ "$(chroot "$R" stat -c '%U:%G %a' /var/lib/kioskd)" = "kioskd:kioskd 700" ] || fail "$a: /var/lib/kioskd: $(chroot "$R" stat -c '%U:%G %a' /var/lib/kioskd)"
	[ "$(chroot "$R" stat -c '%U:%G %a' /etc/kioskd/kioskd.toml)" = "root:kioskd 640" ] || fail "$a: kioskd.toml: $(chroot "$R" stat -c '%U:%G %a' /etc/kioskd/kioskd.toml)"
	[ -L "$R/etc/systemd/system/multi-user.target.wants/kioskd.service" ] || fail "$a: kioskd.service not enabled"
	# The installed unit, with the user and binary present: verify there.
	if out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --root="$R" /usr/lib/systemd/system/kioskd.service 2>&1) && [ -z "$out" ]; then
		ok "$a: systemd-analyze verify of the installed unit"
	else
		fail "$a: systemd-analyze verify --root: $out"
	fi
	case $a in armhf) qemu=qemu-arm-static ;; arm64) qemu=qemu-aarch64-static ;; esac
	if v=$(chroot "$R" "$(command -v $qemu)" /usr/bin/kioskd -version 2>&1); then
		ok "$a: installed kioskd runs: $v"
	else
		fail "$a: installed kioskd -version: $v"
	fi
	# A technician's edit to the conffile survives a reinstall (the upgrade
	# path: prerm upgrade, postinst configure <old version>).
	echo '# edited on site' >>"$R/etc/kioskd/kioskd.toml"
	if out=$(chroot "$R" dpkg --force-confold -i "$deb" 2>&1); then
		ok "$a: reinstalled (upgrade path)"
	else
		fail "$a: reinstall: $out"
	fi
	grep -q '^# edited on site' "$R/etc/kioskd/kioskd.toml" || fail "$a: conffile edit lost on upgrade"
	touch "$R/var/lib/kioskd/queue.db"
	if out=$(chroot "$R" dpkg -r kioskd 2>&1); then ok "$a: removed"; else fail "$a: dpkg -r: $out"; fi
	[ -e "$R/usr/bin/kioskd" ] && fail "$a: /usr/bin/kioskd left after remove"
	[ -e "$R/etc/kioskd/kioskd.toml" ] || fail "$a: remove deleted the conffile"
	[ -e "$R/var/lib/kioskd/queue.db" ] || fail "$a: remove deleted the state"
	if out=$(chroot "$R" dpkg -P kioskd 2>&1); then ok "$a: purged"; else fail "$a: dpkg -P: $out"; fi
	[ -e "$R/etc/kioskd" ] && fail "$a: /etc/kioskd left after purge"
	[ -e "$R/var/lib/kioskd" ] && fail "$a: /var/lib/kioskd left after purge"
	[ -e "$R/etc/systemd/system/multi-user.target.wants/kioskd.service" ] && fail "$a: enable link left after purge"
	umount "$R" 2>/dev/null || true
done

echo
if [ "$failures" -gt 0 ]; then
	echo "package-check: $failures check(s) failed"
	exit 1
fi
echo "package-check: all checks passed"
