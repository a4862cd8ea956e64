package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// kioskConfig is what the technician writes into the package's conffile:
// the simulated reader (taps come over the control socket), no panel, a
// broker by hand on the host (tcp: a test), an event in force.
func kioskConfig(port int) string {
	return fmt.Sprintf(`# /etc/kioskd/kioskd.toml, as make vm-test sets it up (an edited conffile).
device_id = %q
state_dir = "/var/lib/kioskd"
time_zone = "Europe/Brussels"

[event]
id = "evt-vm"
title = "vm-test"
counter_id = "balie-vm"

[reader]
driver = "sim"

[display]
driver = "none"

[control]
socket = "/run/kioskd/control.sock"

[mqtt]
broker = "tcp://10.0.2.2:%d"
allow_insecure = true

[log]
level = "info"
`, device, port)
}

// show reads systemctl show's properties of kioskd.
func show(m *machine, props ...string) (map[string]string, error) {
	out, err := m.sh("systemctl show kioskd -p " + strings.Join(props, " -p "))
	if err != nil {
		return nil, err
	}
	p := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			p[k] = v
		}
	}
	return p, nil
}

// systemdForReal is part 1 on the first boot.
func (h *harness) systemdForReal(ctx context.Context, m *machine) error {
	deb := fmt.Sprintf("/root/vm/kioskd_%s_%s.deb", h.oldVer, h.arch)
	if out, err := m.sh("apt-get install -y --no-install-recommends " + deb + " 2>&1"); err != nil {
		return fmt.Errorf("vm: install %s: %v", deb, err)
	} else {
		h.ok("apt-get install %s: %s", deb, lastLine(out))
	}
	out, _, _ := m.run(time.Minute, "systemctl is-enabled kioskd; systemctl is-active kioskd")
	if f := strings.Fields(out); len(f) == 2 && f[0] == "enabled" && f[1] == "inactive" {
		h.ok("fresh install: kioskd enabled, not started (the technician sets device_id first)")
	} else {
		h.failf("after install: is-enabled, is-active: %q", out)
	}
	if _, err := m.sh("cat > /etc/kioskd/kioskd.toml <<'EOF'\n" + kioskConfig(h.central.port) + "EOF\n"); err != nil {
		return err
	}
	if out, err := m.sh("stat -c '%U:%G %a' /etc/kioskd/kioskd.toml"); err != nil || out != "root:kioskd 640" {
		h.failf("conffile owner and mode: %q %v", out, err)
	}

	// READY: Type=notify, so systemctl start returns only when kioskd sent
	// READY=1, and the unit is active the moment it returns.
	t0 := time.Now()
	if _, err := m.sh("systemctl start kioskd"); err != nil {
		return fmt.Errorf("vm: systemctl start kioskd: %w", err)
	}
	took := time.Since(t0)
	p, err := show(m, "Type", "ActiveState", "SubState", "StatusText", "MainPID", "NotifyAccess", "WatchdogUSec")
	if err != nil {
		return err
	}
	if p["Type"] == "notify" && p["ActiveState"] == "active" && p["SubState"] == "running" {
		h.ok("systemctl start kioskd returned after READY in %s: active (running), Type=notify, WatchdogUSec=%s",
			took.Round(10*time.Millisecond), p["WatchdogUSec"])
	} else {
		h.failf("after systemctl start: %v", p)
	}
	if st, err := m.status(); err != nil {
		h.failf("control socket right after start: %v", err)
	} else {
		h.ok("control socket answers at once: version %s, mqtt %s, event %s", st.Version, st.MQTT, st.EventID)
	}
	// STATUS=: systemctl status shows the line kioskd sends.
	if !strings.HasPrefix(p["StatusText"], "event evt-vm · ") {
		h.failf("StatusText: %q", p["StatusText"])
	}
	stOut, _, _ := m.run(time.Minute, "systemctl status kioskd --no-pager -n 0")
	if i := strings.Index(stOut, `Status: "event evt-vm`); i >= 0 {
		h.ok("systemctl status shows %s", firstLine(stOut[i:]))
	} else {
		h.failf("systemctl status has no STATUS= line: %s", stOut)
	}

	// The exposure score on the running system equals the offline one.
	offline, err := h.offlineExposure()
	if err != nil {
		h.failf("%v", err)
	}
	secOut, _, _ := m.run(time.Minute, "systemd-analyze security kioskd --no-pager")
	if mm := exposureRE.FindStringSubmatch(secOut); mm == nil {
		h.failf("systemd-analyze security kioskd in the VM: %s", secOut)
	} else if mm[1] != offline {
		h.failf("systemd-analyze security: %s in the VM, %s offline", mm[1], offline)
	} else {
		h.ok("systemd-analyze security kioskd: %s in the VM = %s offline", mm[1], offline)
	}

	// The hardening, read off the running process and its mount namespace.
	hard, err := m.sh(`pid=$(systemctl show -p MainPID --value kioskd)
grep -E '^(Uid|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$pid/status | tr -s '\t ' ' '
echo "Root: $(nsenter -t $pid -m findmnt -no OPTIONS /)"
if nsenter -t $pid -m touch /usr/vm-probe 2>/dev/null; then echo "UsrWrite: yes"; else echo "UsrWrite: no"; fi
echo host > /tmp/vm-host-probe
if nsenter -t $pid -m test -e /tmp/vm-host-probe; then echo "Tmp: shared"; else echo "Tmp: private"; fi
if nsenter -t $pid -m test -e /root/vm; then echo "Home: visible"; else echo "Home: hidden"; fi
echo "StateWrite: $(nsenter -t $pid -m findmnt -no OPTIONS /var/lib/kioskd | cut -d, -f1)"
echo "User: $(id -u kioskd)"`)
	if err != nil {
		return err
	}
	hp := map[string]string{}
	for _, l := range strings.Split(hard, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			hp[k] = strings.TrimSpace(v)
		}
	}
	uid := strings.Fields(hp["Uid"])
	want := []struct{ what, got, want string }{
		{"CapEff", hp["CapEff"], "0000000000000000"},
		{"CapBnd", hp["CapBnd"], "0000000000000000"},
		{"CapAmb", hp["CapAmb"], "0000000000000000"},
		{"NoNewPrivs", hp["NoNewPrivs"], "1"},
		{"Seccomp (2: filter)", hp["Seccomp"], "2"},
		{"/ read-only in the unit's namespace", strings.Split(hp["Root"], ",")[0], "ro"},
		{"writing /usr there", hp["UsrWrite"], "no"},
		{"the host's /tmp there", hp["Tmp"], "private"},
		{"/root there (ProtectHome)", hp["Home"], "hidden"},
		{"state directory writable", hp["StateWrite"], "rw"},
	}
	if len(uid) == 0 || uid[0] != hp["User"] || uid[0] == "0" {
		h.failf("kioskd runs as uid %v, want kioskd's %s", uid, hp["User"])
	}
	bad := 0
	for _, w := range want {
		if w.got != w.want {
			h.failf("hardening: %s: %q, want %q", w.what, w.got, w.want)
			bad++
		}
	}
	if bad == 0 {
		h.ok("hardening in force: uid %s, no capabilities, NoNewPrivs, seccomp filter, / read-only, private /tmp, /root hidden", hp["User"])
	}

	// A few taps through central.
	for range 3 {
		t, err := h.tapSaved(m, "setup")
		if err != nil {
			return err
		}
		if _, err := h.waitLedger(ctx, t.ID, 2*time.Minute); err != nil {
			h.failf("tap %s never reached the ledger: %v", t.ID, err)
		}
	}
	h.ok("3 taps saved and answered by central")
	return h.watchdog(ctx, m)
}

// watchdog wedges the tap loop with kioskd's test hook (KIOSKD_TEST_WEDGE,
// read from the environment, unset on every kiosk) in a runtime drop-in:
// the watchdog must kill kioskd and systemd restart it.
func (h *harness) watchdog(ctx context.Context, m *machine) error {
	if _, err := m.sh(`mkdir -p /run/systemd/system/kioskd.service.d
printf '[Service]\nEnvironment=KIOSKD_TEST_WEDGE=after-5s\n' > /run/systemd/system/kioskd.service.d/vm-wedge.conf
systemctl daemon-reload && systemctl restart kioskd`); err != nil {
		return err
	}
	p0, err := show(m, "MainPID", "NRestarts")
	if err != nil {
		return err
	}
	since, _ := m.sh("date +%s")
	t0 := time.Now()
	var p map[string]string
	err = waitFor(ctx, 3*time.Minute, func() (bool, error) {
		var err error
		p, err = show(m, "MainPID", "NRestarts", "ActiveState")
		if err != nil {
			return false, err
		}
		return p["NRestarts"] != p0["NRestarts"] && p["MainPID"] != p0["MainPID"] && p["MainPID"] != "0", nil
	})
	if err != nil {
		h.failf("watchdog: kioskd wedged at 5 s was not restarted: %v (%v → %v)", err, p0, p)
	} else {
		j, _, _ := m.run(time.Minute, "journalctl -b --no-pager -o cat --since @"+since+" -u kioskd >/tmp/wd.log; "+
			"grep -E 'Watchdog timeout|status=6/ABRT|test hook' /tmp/wd.log | head -4; echo \"stacks: $(grep -c '^goroutine [0-9]' /tmp/wd.log)\"")
		if strings.Contains(j, "Watchdog timeout") && strings.Contains(j, "status=6/ABRT") && !strings.Contains(j, "stacks: 0") {
			h.ok("watchdog: the wedged tap loop was killed (SIGABRT, goroutine stacks in the journal) and restarted after %s: %s",
				time.Since(t0).Round(time.Second), strings.ReplaceAll(strings.TrimSpace(j), "\n", " | "))
		} else {
			h.failf("watchdog: restarted, but the journal does not say the watchdog killed it: %s", j)
		}
	}
	if _, err := m.sh(`rm -f /run/systemd/system/kioskd.service.d/vm-wedge.conf
rmdir /run/systemd/system/kioskd.service.d
systemctl daemon-reload && systemctl restart kioskd`); err != nil {
		return err
	}
	if _, err := m.waitActive(2 * time.Minute); err != nil {
		return err
	}
	if _, err := h.tapSaved(m, "setup"); err != nil {
		return err
	}
	h.ok("test hook removed: kioskd restarted, taps saved")
	return nil
}

// clockThatLies is part 3, on the boot with the RTC at 1970 and no NTP.
func (h *harness) clockThatLies(ctx context.Context, m *machine) error {
	guest, _ := m.sh("date -u +%Y-%m-%dT%H:%M:%SZ; systemctl is-active chrony || true")
	h.logf("clock: guest clock %s", strings.ReplaceAll(guest, "\n", ", chrony "))
	if !strings.HasPrefix(guest, "19") && !strings.HasPrefix(guest, "20") {
		h.failf("clock: guest date %q", guest)
	}
	if strings.HasPrefix(guest, time.Now().UTC().Format("2006-01-02")) {
		h.failf("clock: the guest has the host's date (%s): the RTC did not lie", guest)
	}
	var st status
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		var err error
		st, err = m.status()
		return err == nil && st.MQTT == "connected", err
	}); err != nil {
		return fmt.Errorf("vm: clock: kioskd never connected: %w", err)
	}
	if st.ClockSynced {
		h.failf("clock: status says clockSynced with no NTP")
	}
	t, err := h.tapSaved(m, "clock")
	if err != nil {
		return err
	}
	row, err := h.waitLedger(ctx, t.ID, 2*time.Minute)
	if err != nil {
		return err
	}
	rs, err := h.central.retainedStatus(device)
	if err != nil {
		return err
	}
	if !st.ClockSynced && !row.ClockSynced && rs["clockSynced"] == false {
		h.ok("clock: RTC 1970, no NTP: clockSynced false in status, in the retained Status and in the checkin; tap saved")
	} else {
		h.failf("clock: unsynchronised: status %v, checkin %v, retained Status %v", st.ClockSynced, row.ClockSynced, rs["clockSynced"])
	}

	ntp, port, err := newNTP(h.work)
	if err != nil {
		return err
	}
	if err := ntp.start(); err != nil {
		return err
	}
	h.mu.Lock()
	h.ntp = ntp
	h.mu.Unlock()
	defer ntp.stop()
	if _, err := m.sh(fmt.Sprintf(`cat > /etc/chrony/chrony.conf <<'EOF'
# make vm-test: the host's chronyd (-x: it never sets the host's clock)
server 10.0.2.2 port %d iburst minpoll -2 maxpoll 0
makestep 1 -1
driftfile /var/lib/chrony/chrony.drift
# As Debian's chrony.conf has it. Without rtcsync chronyd leaves the
# kernel's STA_UNSYNC set (so the kernel keeps off the RTC); kioskd, which
# read STA_UNSYNC, then stayed "not synchronised" while timedatectl
# (maxerror) said synchronised: measured here. kioskd now judges by
# maxerror too (device/host).
rtcsync
EOF
systemctl enable --now chrony 2>&1`, port)); err != nil {
		return err
	}
	t0 := time.Now()
	if err := waitFor(ctx, 3*time.Minute, func() (bool, error) {
		var err error
		st, err = m.status()
		return err == nil && st.ClockSynced, err
	}); err != nil {
		src, _, _ := m.run(time.Minute, "chronyc -n sources; chronyc tracking")
		h.failf("clock: kioskd's clock never synchronised from the host's NTP: %v\n%s", err, src)
		return nil
	}
	guest, _ = m.sh("date -u +%Y-%m-%dT%H:%M:%SZ")
	h.logf("clock: NTP from the host: synchronised after %s, guest clock %s", time.Since(t0).Round(time.Second), guest)
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		rs, err = h.central.retainedStatus(device)
		return err == nil && rs["clockSynced"] == true, err
	}); err != nil {
		h.failf("clock: the retained Status never said clockSynced: %v", err)
	}
	t, err = h.tapSaved(m, "clock")
	if err != nil {
		return err
	}
	if row, err = h.waitLedger(ctx, t.ID, 2*time.Minute); err != nil {
		return err
	}
	if row.ClockSynced && rs["clockSynced"] == true {
		h.ok("clock: with NTP on the host's loopback: clockSynced true in status, in the retained Status and in the checkin")
	} else {
		h.failf("clock: synchronised: checkin %v, retained Status %v", row.ClockSynced, rs["clockSynced"])
	}
	return nil
}

// upgradeUnderLoad is part 4: a newer build installed with apt-get while
// taps stream in and pending checkins wait for a broker that is down.
func (h *harness) upgradeUnderLoad(ctx context.Context, m *machine) error {
	h.central.down()
	if err := waitFor(ctx, 2*time.Minute, func() (bool, error) {
		st, err := m.status()
		return err == nil && st.MQTT != "connected", err
	}); err != nil {
		return fmt.Errorf("vm: upgrade: kioskd still connected with the broker down: %w", err)
	}
	before, err := m.sh("sha256sum /etc/kioskd/kioskd.toml; systemctl show -p MainPID --value kioskd")
	if err != nil {
		return err
	}
	for range 10 {
		if _, err := h.tapSaved(m, "upgrade"); err != nil {
			return err
		}
	}
	st, err := m.status()
	if err != nil {
		return err
	}
	if st.Version != h.oldVer {
		h.failf("upgrade: kioskd runs %q before the upgrade, want %q", st.Version, h.oldVer)
	}
	pendingBefore := st.Pending
	stop := make(chan struct{})
	s := startStream(m, h.cards, "upgrade", stop, true)
	time.Sleep(2 * time.Second)
	deb := fmt.Sprintf("/root/vm/kioskd_%s_%s.deb", h.newVer, h.arch)
	out, rc, err := m.run(5*time.Minute, "apt-get install -y --no-install-recommends "+deb+" 2>&1")
	time.Sleep(3 * time.Second)
	close(stop)
	<-s.done
	during := s.confirmed()
	h.all = append(h.all, during...)
	if err != nil || rc != 0 {
		return fmt.Errorf("vm: upgrade: apt-get install %s: exit %d %v: %s", deb, rc, err, out)
	}
	h.logf("upgrade: %s; %d taps saved while it ran (%v refused or cut off by the restart)", lastLine(out), len(during), s.other)
	st, err = m.waitActive(2 * time.Minute)
	if err != nil {
		return err
	}
	after, err := m.sh("sha256sum /etc/kioskd/kioskd.toml; systemctl show -p MainPID --value kioskd")
	if err != nil {
		return err
	}
	bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
	if bl[0] != al[0] {
		h.failf("upgrade: the edited conffile changed: %s → %s", bl[0], al[0])
	}
	if len(bl) < 2 || len(al) < 2 || bl[1] == al[1] {
		h.failf("upgrade: kioskd not restarted (MainPID %v → %v)", bl, al)
	}
	ver, _ := m.sh("dpkg-query -W -f '${Version}' kioskd")
	if st.Version != h.newVer || ver != h.newVer {
		h.failf("upgrade: running %q, dpkg %q, want %q", st.Version, ver, h.newVer)
	}
	if bl[0] == al[0] && len(al) > 1 && bl[1] != al[1] && st.Version == h.newVer {
		h.ok("upgrade: %s → %s by apt-get with %d checkins pending and the broker down: restarted (pid %s → %s), edited conffile kept",
			h.oldVer, h.newVer, pendingBefore, bl[1], al[1])
	}
	if _, err := h.checkAfterCut(ctx, m, "upgrade"); err != nil {
		return err
	}
	// Central back: everything the kiosk ever answered saved (outside the
	// control) reaches the ledger.
	if err := h.central.up(); err != nil {
		return err
	}
	if err := waitFor(ctx, 5*time.Minute, func() (bool, error) {
		st, err := m.status()
		return err == nil && st.Pending == 0, err
	}); err != nil {
		h.failf("upgrade: the queue never drained: %v", err)
	}
	l, err := h.central.ledgerRows(ctx, device)
	if err != nil {
		return err
	}
	missing := 0
	for _, t := range h.all {
		if _, ok := l[t.ID]; !ok && !t.inControl() {
			missing++
		}
	}
	if missing > 0 {
		h.lost = max(h.lost, missing)
		h.failf("drained: %d confirmed taps never reached the ledger", missing)
	} else {
		h.ok("drained: all %d confirmed taps of the run are in central's ledger", h.confirmedOutsideControl())
	}
	return nil
}

// purge: apt-get purge removes the package's files, its conffile, state and
// enablement, and nothing else (the kioskd user stays, as Debian keeps
// system users).
func (h *harness) purge(m *machine) error {
	list := `find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /root -o -path /var/lib/chrony -o -path /var/lib/systemd/timers -o -path /var/backups \) -prune -o -print | sort`
	if _, err := m.sh("mkdir -p /var/lib/vm-keep && echo keep > /var/lib/vm-keep/file && echo keep > /etc/vm-keep.conf\n" + list + " > /root/before.txt"); err != nil {
		return err
	}
	out, err := m.sh("apt-get purge -y kioskd 2>&1")
	if err != nil {
		return fmt.Errorf("vm: purge: %w", err)
	}
	h.logf("purge: %s", lastLine(out))
	diff, err := m.sh(list + " > /root/after.txt; comm -23 /root/before.txt /root/after.txt | sed 's/^/- /'; comm -13 /root/before.txt /root/after.txt | sed 's/^/+ /'")
	if err != nil {
		return err
	}
	allowed := []string{"/usr/bin/kioskd", "/usr/bin/kioskctl", "/usr/lib/systemd/system/kioskd.service",
		"/usr/share/doc/kioskd", "/etc/kioskd", "/var/lib/kioskd",
		"/etc/systemd/system/multi-user.target.wants/kioskd.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/kioskd.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/kioskd.service",
		"/var/lib/systemd/deb-systemd-helper-masked/kioskd.service"}
	mustGo := allowed[:7]
	removed := map[string]bool{}
	var unexpected, added []string
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case strings.HasPrefix(l, "- "):
			p := l[2:]
			removed[p] = true
			if !underAny(p, allowed) {
				unexpected = append(unexpected, p)
			}
		case strings.HasPrefix(l, "+ "):
			added = append(added, l[2:])
		}
	}
	for _, p := range mustGo {
		if !removed[p] {
			h.failf("purge: %s not removed", p)
		}
	}
	if len(unexpected) > 0 {
		h.failf("purge removed what is not the package's: %v", unexpected)
	}
	if len(added) > 0 {
		h.logf("purge: left behind (new since before the purge): %v", added)
	}
	rest, _, _ := m.run(time.Minute, "cat /var/lib/vm-keep/file /etc/vm-keep.conf; getent passwd kioskd >/dev/null && echo user-kept; systemctl is-active kioskd; dpkg-query -W -f '${db:Status-Status}' kioskd 2>&1")
	h.logf("purge: %s", strings.ReplaceAll(strings.TrimSpace(rest), "\n", ", "))
	if !strings.Contains(rest, "keep\nkeep\nuser-kept\ninactive") {
		h.failf("purge: after it: %q", rest)
	}
	if len(unexpected) == 0 {
		h.ok("purge: removed %d paths, all the package's (binaries, unit, docs, /etc/kioskd, /var/lib/kioskd, enablement), nothing else", len(removed))
	}
	return nil
}

func underAny(p string, prefixes []string) bool {
	for _, x := range prefixes {
		if p == x || strings.HasPrefix(p, x+"/") {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
