#!/usr/bin/env bash
# packaging/check.sh DIST — what `make package-check` (and CI) checks on the
# packages `make package` left in DIST:
#   1. systemd-analyze verify on the unit; systemd-analyze security exposure ≤ 4.0;
#      the syscalls armhf kioskd makes (qemu-arm -strace) pass its SystemCallFilter=
#   2. armhf and arm64 kioskd/kioskctl start under qemu-user, amd64 natively:
#      -version, -h
#   3. sizes, against the targets armhf kioskd ≤ 15 MB, each .deb ≤ 8 MB
#   4. dpkg-deb: fields, file list, conffiles
#   5. each .deb installed, reinstalled (upgrade path), removed and purged in
#      a throwaway root (overlay of /, else a hard-linked copy) with its
#      maintainer scripts run chrooted there
# then the same for the kiosk-ingest packages (amd64, arm64): its unit
# verified and scored, its syscalls (arm64 under qemu-aarch64 -strace,
# against a Mosquitto of its own) checked against its SystemCallFilter=,
# -version/-h/no -broker, contents, install/upgrade/remove/purge.
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
for a in armhf arm64 amd64; do
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
# allowed_syscalls UNIT OUT: the syscalls UNIT's SystemCallFilter= lines
# allow, one a line, sorted, in OUT.
allowed_syscalls() {
	local unit=$1 out=$2 line v first=1
	: >"$out"
	while IFS= read -r line; do
		v=${line#SystemCallFilter=}
		if [[ $v == "~"* ]]; then
			[ "$first" = 1 ] && die "$unit: the first SystemCallFilter= must be an allow list for this check"
			# shellcheck disable=SC2086 # a list of names
			expand_list ${v#"~"} | sort -u >"$tmp/out"
			comm -23 "$out" "$tmp/out" >"$tmp/next"
		else
			# shellcheck disable=SC2086
			{ cat "$out"; expand_list $v; } | sort -u >"$tmp/next"
		fi
		mv "$tmp/next" "$out"
		first=0
	done < <(grep '^SystemCallFilter=' "$unit")
	[ -s "$out" ] || fail "$unit: no SystemCallFilter= allow list"
}
allowed=$tmp/allowed
allowed_syscalls "$UNIT" "$allowed"
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
step "binaries under qemu-user (amd64: natively)"
for a in armhf arm64 amd64; do
	case $a in armhf) qemu=(qemu-arm-static) ;; arm64) qemu=(qemu-aarch64-static) ;; amd64) qemu=() ;; esac
	for c in kioskd kioskctl; do
		bin=$DIST/$a/$c
		file_arch=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')   # ELF e_machine: 2800 arm, b700 aarch64, 3e00 x86-64
		case $a/$file_arch in armhf/2800 | arm64/b700 | amd64/3e00) ;; *) fail "$bin: ELF machine $file_arch is not $a" ;; esac
		if v=$("${qemu[@]}" "$bin" -version 2>&1) && [[ $v == *"$c"* ]]; then
			ok "$a $c -version: $v"
		else
			fail "$a $c -version: $v"
		fi
		if h=$("${qemu[@]}" "$bin" -h 2>&1) && [[ $h == *"usage: $c"* ]]; then
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
for a in armhf arm64 amd64; do
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
	case $a in armhf) qemu=("$(command -v qemu-arm-static)") ;; arm64) qemu=("$(command -v qemu-aarch64-static)") ;; amd64) qemu=() ;; esac
	if v=$(chroot "$R" "${qemu[@]}" /usr/bin/kioskd -version 2>&1); then
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

# ===================================================== kiosk-ingest (central)
# The same checks on the kiosk-ingest packages (amd64, arm64): its unit, its
# syscalls against its filter, its binaries, the package contents, and an
# install, upgrade, remove and purge in a throwaway root.
IUNIT=${KIOSK_INGEST_UNIT:-systemd/kiosk-ingest.service}
idebs=()
for a in amd64 arm64; do
	d=$(ls -t "$DIST"/kiosk-ingest_*_"$a".deb 2>/dev/null | head -1 || true)
	[ -n "$d" ] || die "no $DIST/kiosk-ingest_*_$a.deb: run make package"
	[ -x "$DIST/$a/kiosk-ingest" ] || die "no $DIST/$a/kiosk-ingest: run make package"
	idebs+=("$d")
done
need mosquitto mosquitto
need mosquitto_pub mosquitto-clients

step "kiosk-ingest: systemd unit"
sed 's#^ExecStart=/usr/bin/kiosk-ingest #ExecStart=/bin/true #' "$IUNIT" >"$tmp/kiosk-ingest.service"
grep -q '^ExecStart=/bin/true ' "$tmp/kiosk-ingest.service" || fail "$IUNIT: ExecStart= is not /usr/bin/kiosk-ingest …"
if out=$(systemd-analyze verify "$tmp/kiosk-ingest.service" 2>&1) && [ -z "$out" ]; then
	ok "systemd-analyze verify $IUNIT"
else
	fail "systemd-analyze verify $IUNIT: $out"
fi
if grep -nE '^(StandardOutput|StandardError)=(file|append|truncate):|^LogsDirectory=' "$IUNIT"; then
	fail "$IUNIT writes logs to files"
else
	ok "no log files in $IUNIT (stdout/stderr → journal)"
fi
for want in Type=notify NotifyAccess=main Restart=on-failure RestartPreventExitStatus=2 User=kiosk-ingest \
	StateDirectory=kiosk-ingest Environment=GOTRACEBACK=crash 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'; do
	grep -qxF "$want" "$IUNIT" || fail "$IUNIT lacks $want"
done
grep -qE '^WatchdogSec=[1-9]' "$IUNIT" || fail "$IUNIT has no WatchdogSec="
sec=$(systemd-analyze security --offline=yes --threshold=$MAX_EXPOSURE "$IUNIT" 2>&1) && secrc=0 || secrc=$?
exposure=$(printf '%s\n' "$sec" | grep -E 'Overall exposure level' || true)
[ -n "$exposure" ] || fail "systemd-analyze security printed no exposure level: $sec"
printf '%s\n' "$sec" | grep -E '^✗' || true
echo "$exposure"
if [ "$secrc" = 0 ]; then
	ok "kiosk-ingest exposure within 4.0"
else
	fail "kiosk-ingest exposure over 4.0 (systemd-analyze security exit $secrc)"
fi

# The syscalls kiosk-ingest makes must pass its unit's filter: arm64 under
# qemu-aarch64 -strace, through start (SQLite ledger created and migrated),
# connect and subscribe to a Mosquitto of its own, one checkin booked and
# answered, idle ticks of the batch loop, SIGTERM.
iallowed=$tmp/iallowed
allowed_syscalls "$IUNIT" "$iallowed"
isc=$tmp/isc
mkdir -p "$isc"
port=
for p in $(seq 41883 41983); do
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port=$p; break; }
done
[ -n "$port" ] || die "no free port for the syscall trace's Mosquitto"
printf '%s\n' "listener $port 127.0.0.1" 'allow_anonymous true' 'persistence false' >"$isc/mosquitto.conf"
mosquitto -c "$isc/mosquitto.conf" >"$isc/mosquitto.log" 2>&1 &
mpid=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
qemu-aarch64-static -strace "$DIST/arm64/kiosk-ingest" -broker "tcp://127.0.0.1:$port" -db "$isc/ledger.db" \
	-client-id ingest-syscalls -enroll-unknown -log-level debug >"$isc/strace" 2>&1 &
ipid=$!
for _ in $(seq 300); do
	grep -q 'msg=subscribed' "$isc/strace" && break
	sleep 0.2
done
if grep -q 'msg=subscribed' "$isc/strace"; then
	mosquitto_pub -p "$port" -q 1 -t kiosk/v1/kiosk-syscalls/checkin -m '{"v":1,"id":"0192e0c4-7a1b-7c3d-8e9f-0123456789ab","deviceId":"kiosk-syscalls","seq":1,"chipNumber":"042F51B2712380","eventId":"evt-syscalls","counterId":"balie","tappedAt":"2026-03-01T12:00:00Z","clockSynced":true,"bootId":"b","uptimeMs":1}' ||
		fail "syscall trace: mosquitto_pub failed"
	for _ in $(seq 150); do
		grep -q 'msg="checkin answered"' "$isc/strace" && break
		sleep 0.2
	done
	grep -q 'msg="checkin answered"' "$isc/strace" || fail "syscall trace: the checkin was not answered: $(tail -c 2000 "$isc/strace")"
	sleep 2 # a tick or two of the idle batch loop
else
	fail "syscall trace: kiosk-ingest under qemu-aarch64 did not subscribe: $(tail -c 2000 "$isc/strace")"
fi
kill -TERM "$ipid" 2>/dev/null || true
wait "$ipid" || fail "syscall trace: kiosk-ingest under qemu-aarch64 did not exit 0 on SIGTERM"
kill -TERM "$mpid" 2>/dev/null || true
wait "$mpid" 2>/dev/null || true
grep -oE '(^|[^a-z_0-9])[0-9]+ [a-z_][a-z_0-9]*[(]' "$isc/strace" | sed -E 's/.* ([a-z_0-9]+)[(]$/\1/' |
	sort -u >"$isc/used"
echo "arm64 kiosk-ingest made $(wc -l <"$isc/used") distinct syscalls through start, subscribe, a checkin, idle, SIGTERM"
grep -qx fdatasync "$isc/used" || grep -qx fsync "$isc/used" || fail "syscall trace saw no fsync/fdatasync: is the trace working?"
# fchown: SQLite gives a file it creates as root the database's owner;
# under the unit kiosk-ingest never runs as root (this trace does).
blocked=$(comm -23 "$isc/used" "$iallowed" | grep -vxE 'fchown|fchown32' || true)
if [ -n "$blocked" ]; then
	fail "syscalls kiosk-ingest makes but $IUNIT's SystemCallFilter= blocks: $(echo "$blocked" | tr '\n' ' ')"
else
	ok "every syscall kiosk-ingest made passes $IUNIT's SystemCallFilter="
fi

step "kiosk-ingest: binaries"
for a in amd64 arm64; do
	case $a in amd64) qemu=() ;; arm64) qemu=(qemu-aarch64-static) ;; esac
	bin=$DIST/$a/kiosk-ingest
	file_arch=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ') # ELF e_machine: 3e00 x86-64, b700 aarch64
	case $a/$file_arch in amd64/3e00 | arm64/b700) ;; *) fail "$bin: ELF machine $file_arch is not $a" ;; esac
	if v=$("${qemu[@]}" "$bin" -version 2>&1) && [[ $v == "kiosk-ingest "* ]]; then
		ok "$a kiosk-ingest -version: $v"
	else
		fail "$a kiosk-ingest -version: $v"
	fi
	if h=$("${qemu[@]}" "$bin" -h 2>&1) && [[ $h == *"kiosk-ingest -broker URL"* ]]; then
		ok "$a kiosk-ingest -h"
	else
		fail "$a kiosk-ingest -h: $h"
	fi
	# What a fresh install does at boot before -broker is set: exit 2, one line.
	e=$("${qemu[@]}" "$bin" -db "$tmp/none.db" 2>&1) && erc=0 || erc=$?
	if [ "$erc" = 2 ] && [[ $e == *"-broker is required"* ]]; then
		ok "$a kiosk-ingest without -broker exits 2: $e"
	else
		fail "$a kiosk-ingest without -broker: exit $erc: $e"
	fi
	echo "$a kiosk-ingest: $(mb "$(stat -c %s "$bin")") (stripped)"
done

step "kiosk-ingest: package contents"
want_files="./usr/bin/kiosk-ingest ./usr/lib/systemd/system/kiosk-ingest.service ./usr/lib/sysusers.d/kiosk-ingest.conf ./etc/default/kiosk-ingest ./usr/share/doc/kiosk-ingest/README.service"
for d in "${idebs[@]}"; do
	a=${d##*_}
	a=${a%.deb}
	dpkg-deb --info "$d" >/dev/null || fail "$d: dpkg-deb cannot read it"
	[ "$(dpkg-deb -f "$d" Package)" = kiosk-ingest ] || fail "$d: Package is not kiosk-ingest"
	[ "$(dpkg-deb -f "$d" Architecture)" = "$a" ] || fail "$d: Architecture is not $a"
	echo "$(basename "$d"): Version $(dpkg-deb -f "$d" Version), $(mb "$(stat -c %s "$d")")"
	list=$(dpkg-deb -c "$d")
	printf '%s\n' "$list" | awk '{ print "  " $1, $2, $6 }'
	for f in $want_files; do
		grep -qE " $f\$" <<<"$list" || fail "$d lacks $f"
	done
	grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/kiosk-ingest$' <<<"$list" || fail "$d: /usr/bin/kiosk-ingest not 0755 root:root"
	conffiles=$(dpkg-deb -I "$d" conffiles 2>/dev/null || true)
	[ "$conffiles" = /etc/default/kiosk-ingest ] || fail "$d: conffiles are '$conffiles', want /etc/default/kiosk-ingest"
	for s in postinst prerm postrm; do
		dpkg-deb -I "$d" "$s" >/dev/null 2>&1 || fail "$d has no $s"
	done
	x=$(mktemp -d -p "$tmp")
	dpkg-deb -x "$d" "$x"
	cmp -s "$x/usr/lib/systemd/system/kiosk-ingest.service" "$IUNIT" || fail "$d: unit differs from $IUNIT"
	ok "$(basename "$d") contents"
done

step "kiosk-ingest: install, upgrade, remove, purge in a throwaway root"
for d in "${idebs[@]}"; do
	a=${d##*_}
	a=${a%.deb}
	r=$(mktemp -d /var/tmp/kiosk-ingest-root.XXXXXX)
	roots+=("$r")
	newroot "$r"
	R=$r/merged
	rm -rf "$R/var/lib/kiosk-ingest" "$R/etc/default/kiosk-ingest" "$R/run/systemd/system"
	chroot "$R" sh -c 'getent passwd kiosk-ingest >/dev/null' && die "$R: a kiosk-ingest user exists already (from the host?)"
	dpkg --root="$R" --add-architecture "$a"
	cp "$d" "$R/tmp/"
	deb=/tmp/$(basename "$d")
	if ! out=$(chroot "$R" dpkg -i "$deb" 2>&1); then
		fail "$a: dpkg -i kiosk-ingest: $out"
		continue
	fi
	ok "$a: kiosk-ingest installed; maintainer scripts ran"
	chroot "$R" dpkg -s kiosk-ingest | grep -q '^Status: install ok installed' || fail "$a: dpkg -s kiosk-ingest: not installed"
	chroot "$R" getent passwd kiosk-ingest | grep -q ':/var/lib/kiosk-ingest:/usr/sbin/nologin$' ||
		fail "$a: user kiosk-ingest: $(chroot "$R" getent passwd kiosk-ingest)"
	chroot "$R" getent group kiosk-ingest >/dev/null || fail "$a: no group kiosk-ingest"
	[ "$(chroot "$R" stat -c '%U:%G %a' /var/lib/kiosk-ingest)" = "kiosk-ingest:kiosk-ingest 700" ] ||
		fail "$a: /var/lib/kiosk-ingest: $(chroot "$R" stat -c '%U:%G %a' /var/lib/kiosk-ingest)"
	[ "$(chroot "$R" stat -c '%U:%G %a' /etc/default/kiosk-ingest)" = "root:kiosk-ingest 640" ] ||
		fail "$a: /etc/default/kiosk-ingest: $(chroot "$R" stat -c '%U:%G %a' /etc/default/kiosk-ingest)"
	[ -L "$R/etc/systemd/system/multi-user.target.wants/kiosk-ingest.service" ] || fail "$a: kiosk-ingest.service not enabled"
	if out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --root="$R" /usr/lib/systemd/system/kiosk-ingest.service 2>&1) && [ -z "$out" ]; then
		ok "$a: systemd-analyze verify of the installed kiosk-ingest unit"
	else
		fail "$a: systemd-analyze verify --root kiosk-ingest: $out"
	fi
	case $a in amd64) qemu=() ;; arm64) qemu=("$(command -v qemu-aarch64-static)") ;; esac
	if v=$(chroot "$R" "${qemu[@]}" /usr/bin/kiosk-ingest -version 2>&1); then
		ok "$a: installed kiosk-ingest runs: $v"
	else
		fail "$a: installed kiosk-ingest -version: $v"
	fi
	# An administrator's flags survive a reinstall (the upgrade path).
	echo 'KIOSK_INGEST_OPTS="-broker tcp://127.0.0.1:1883"' >>"$R/etc/default/kiosk-ingest"
	if out=$(chroot "$R" dpkg --force-confold -i "$deb" 2>&1); then
		ok "$a: kiosk-ingest reinstalled (upgrade path)"
	else
		fail "$a: kiosk-ingest reinstall: $out"
	fi
	grep -q '^KIOSK_INGEST_OPTS="-broker' "$R/etc/default/kiosk-ingest" || fail "$a: /etc/default/kiosk-ingest edit lost on upgrade"
	# amd64 purges with a ledger in the state directory (kept), arm64
	# without one (the empty directory goes).
	[ "$a" = amd64 ] && touch "$R/var/lib/kiosk-ingest/ledger.db"
	if out=$(chroot "$R" dpkg -r kiosk-ingest 2>&1); then ok "$a: kiosk-ingest removed"; else fail "$a: dpkg -r kiosk-ingest: $out"; fi
	[ -e "$R/usr/bin/kiosk-ingest" ] && fail "$a: /usr/bin/kiosk-ingest left after remove"
	[ -e "$R/etc/default/kiosk-ingest" ] || fail "$a: remove deleted /etc/default/kiosk-ingest"
	[ -d "$R/var/lib/kiosk-ingest" ] || fail "$a: remove deleted the state directory"
	if out=$(chroot "$R" dpkg -P kiosk-ingest 2>&1); then ok "$a: kiosk-ingest purged"; else fail "$a: dpkg -P kiosk-ingest: $out"; fi
	[ -e "$R/etc/default/kiosk-ingest" ] && fail "$a: /etc/default/kiosk-ingest left after purge"
	[ -e "$R/etc/systemd/system/multi-user.target.wants/kiosk-ingest.service" ] && fail "$a: enable link left after purge"
	if [ "$a" = amd64 ]; then
		[ -e "$R/var/lib/kiosk-ingest/ledger.db" ] || fail "$a: purge deleted the ledger"
		[[ $out == *"kept /var/lib/kiosk-ingest"* ]] || fail "$a: purge did not say it kept the ledger: $out"
	else
		[ -e "$R/var/lib/kiosk-ingest" ] && fail "$a: empty /var/lib/kiosk-ingest left after purge"
	fi
	umount "$R" 2>/dev/null || true
done

echo
if [ "$failures" -gt 0 ]; then
	echo "package-check: $failures check(s) failed"
	exit 1
fi
echo "package-check: all checks passed"
