package fleet

import (
	"context"
	"encoding/json"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/protocol"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// status is a Status message of device at the kiosk's time at, received at
// recv.
func status(device string, online bool, at, recv time.Time, edit func(*protocol.Status)) Message {
	s := protocol.Status{V: 1, Online: online, DeviceID: device, Version: "1.0.0", EventID: "evt-1",
		ClockSynced: true, Reader: "ok", Display: "ok", At: protocol.FormatTime(at)}
	if edit != nil {
		edit(&s)
	}
	return Message{Status: s, Raw: s.Encode(), ReceivedAt: recv}
}

func will(device string, recv time.Time) Message {
	raw := protocol.Will(device)
	s, err := protocol.DecodeStatus(raw)
	if err != nil {
		panic(err)
	}
	return Message{Status: s, Raw: raw, ReceivedAt: recv}
}

func apply(t *testing.T, r *Registry, m Message) Outcome {
	t.Helper()
	out, err := r.Apply(context.Background(), []Message{m}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func device(t *testing.T, r *Registry, id string) Device {
	t.Helper()
	d, err := r.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func transitions(t *testing.T, r *Registry, id string) []TransitionRecord {
	t.Helper()
	ts, err := r.Transitions(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestRegistryLifecycle walks one kiosk through what the broker delivers:
// online, the same retained Status again (resubscribe), a newer Status, an
// older one out of order, the last will (twice, as retained), online again,
// checkins; and checks state, since, seen times, the kept Status and the
// transitions at each step.
func TestRegistryLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, _ := openRegistry(t, dsn)
		const id = "kiosk-reg-01"

		first := status(id, true, t0, t0.Add(time.Second), nil)
		if o := apply(t, r, first); o != Transition {
			t.Fatalf("first status: %v", o)
		}
		d := device(t, r, id)
		if d.State != StateOnline || !d.Since.Equal(t0.Add(time.Second)) || !d.FirstSeen.Equal(d.Since) || !d.LastSeen.Equal(d.Since) ||
			d.Status.Version != "1.0.0" || !d.StatusAt.Equal(t0) || !d.LastCheckin.IsZero() {
			t.Fatalf("after first status: %+v", d)
		}

		// The retained Status again on a new subscription: nothing changes.
		again := first
		again.ReceivedAt, again.Retained = t0.Add(time.Hour), true
		if o := apply(t, r, again); o != Duplicate {
			t.Fatalf("retained again: %v", o)
		}
		if d2 := device(t, r, id); !d2.LastSeen.Equal(d.LastSeen) {
			t.Fatalf("a duplicate moved last seen: %v", d2.LastSeen)
		}

		newer := status(id, true, t0.Add(time.Minute), t0.Add(time.Minute+time.Second), func(s *protocol.Status) {
			s.Pending, s.OldestPendingS, s.Display = 3, 40, "fault"
		})
		if o := apply(t, r, newer); o != Applied {
			t.Fatalf("newer: %v", o)
		}
		older := status(id, true, t0.Add(30*time.Second), t0.Add(2*time.Minute), func(s *protocol.Status) { s.Pending = 99 })
		if o := apply(t, r, older); o != Stale {
			t.Fatalf("older: %v", o)
		}
		d = device(t, r, id)
		if d.Status.Pending != 3 || d.Status.Display != "fault" || !d.Since.Equal(t0.Add(time.Second)) ||
			!d.LastSeen.Equal(t0.Add(time.Minute+time.Second)) {
			t.Fatalf("after newer and older: %+v", d)
		}

		wt := t0.Add(5 * time.Minute)
		if o := apply(t, r, will(id, wt)); o != Transition {
			t.Fatalf("will: %v", o)
		}
		rw := will(id, wt.Add(time.Hour))
		rw.Retained = true
		if o := apply(t, r, rw); o != Duplicate {
			t.Fatalf("retained will: %v", o)
		}
		d = device(t, r, id)
		if d.State != StateOffline || !d.Since.Equal(wt) || d.Status.Pending != 3 || !d.LastSeen.Equal(t0.Add(time.Minute+time.Second)) {
			t.Fatalf("after will: %+v (the last Status stays, last seen is the kiosk's)", d)
		}

		back := status(id, true, t0.Add(10*time.Minute), t0.Add(10*time.Minute), nil)
		if o := apply(t, r, back); o != Transition {
			t.Fatalf("back online: %v", o)
		}

		// Checkins: this device's last checkin, and a device known only by
		// its checkins.
		if _, err := r.Apply(context.Background(), nil, map[string]time.Time{
			id: t0.Add(11 * time.Minute), "kiosk-reg-02": t0.Add(12 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Apply(context.Background(), nil, map[string]time.Time{id: t0.Add(9 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		d = device(t, r, id)
		if d.State != StateOnline || !d.Since.Equal(t0.Add(10*time.Minute)) || !d.LastCheckin.Equal(t0.Add(11*time.Minute)) ||
			!d.LastSeen.Equal(t0.Add(11*time.Minute)) || !d.FirstSeen.Equal(t0.Add(time.Second)) {
			t.Fatalf("after checkins: %+v", d)
		}
		if d2 := device(t, r, "kiosk-reg-02"); d2.State != StateUnknown || d2.HasStatus() || !d2.LastCheckin.Equal(t0.Add(12*time.Minute)) {
			t.Fatalf("checkin-only device: %+v", d2)
		}

		ts := transitions(t, r, id)
		want := []TransitionRecord{{t0.Add(time.Second), true, CauseStatus}, {wt, false, CauseWill}, {t0.Add(10 * time.Minute), true, CauseStatus}}
		if len(ts) != len(want) {
			t.Fatalf("transitions %+v, want %+v", ts, want)
		}
		for i := range ts {
			if !ts[i].At.Equal(want[i].At) || ts[i].Online != want[i].Online || ts[i].Cause != want[i].Cause {
				t.Fatalf("transition %d: %+v, want %+v", i, ts[i], want[i])
			}
		}
		// Known from t0+1s; offline from +5m to +10m: 5 of 19 minutes.
		share, ok := Availability(ts, t0, t0.Add(20*time.Minute+time.Second))
		if wantShare := 1 - 5.0/20; !ok || share < wantShare-0.001 || share > wantShare+0.001 {
			t.Fatalf("availability %v %v, want %v", share, ok, wantShare)
		}

		ds, err := r.Devices(context.Background())
		if err != nil || len(ds) != 2 || ds[0].ID != id || ds[1].ID != "kiosk-reg-02" {
			t.Fatalf("devices %+v %v", ds, err)
		}
	})
}

// TestRegistryUnsyncedClock: a kiosk without a synchronised clock (a Pi
// booting in 1970) is not judged stale by its "at": arrival order decides.
func TestRegistryUnsyncedClock(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, _ := openRegistry(t, dsn)
		const id = "kiosk-reg-03"
		apply(t, r, status(id, true, t0, t0, nil))
		apply(t, r, will(id, t0.Add(time.Minute)))
		boot := status(id, true, time.Date(1970, 1, 1, 0, 0, 30, 0, time.UTC), t0.Add(2*time.Minute), func(s *protocol.Status) {
			s.ClockSynced = false
		})
		if o := apply(t, r, boot); o != Transition {
			t.Fatalf("status of a kiosk booted in 1970: %v", o)
		}
		if d := device(t, r, id); d.State != StateOnline || d.Status.ClockSynced {
			t.Fatalf("%+v", d)
		}
		// Synced again: newer than 1970, applied.
		if o := apply(t, r, status(id, true, t0.Add(3*time.Minute), t0.Add(3*time.Minute), nil)); o != Applied {
			t.Fatalf("synced again: %v", o)
		}
	})
}

// TestRegistryRetainedMissed: a retained Status the registry had not seen
// (published while the ingest was away) is applied, dated by the kiosk's
// synchronised time.
func TestRegistryRetainedMissed(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, _ := openRegistry(t, dsn)
		const id = "kiosk-reg-04"
		apply(t, r, will(id, t0))
		m := status(id, true, t0.Add(time.Minute), t0.Add(time.Hour), nil)
		m.Retained = true
		if o := apply(t, r, m); o != Transition {
			t.Fatalf("%v", o)
		}
		if d := device(t, r, id); d.State != StateOnline || !d.Since.Equal(t0.Add(time.Minute)) {
			t.Fatalf("%+v", d)
		}
	})
}

// TestRegistryKeepsUnknownFields: the raw Status is kept whole, so fields
// this package does not know (added to the contract later) are there to
// read, and the ones it reads beside protocol.Status are decoded.
func TestRegistryKeepsUnknownFields(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, _ := openRegistry(t, dsn)
		raw := []byte(`{"v":1,"online":true,"deviceId":"kiosk-reg-05","version":"2.0.0","at":"2026-12-01T10:00:00.000Z",` +
			`"clockSynced":true,"configsRejected":2,"outcomes":{"saved":7,"blocked":1},"seqHigh":9,"uptimeS":60,"futureField":{"x":1}}`)
		s, err := protocol.DecodeStatus(raw)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, r, Message{Status: s, Raw: raw, ReceivedAt: t0})
		d := device(t, r, "kiosk-reg-05")
		var back map[string]any
		if err := json.Unmarshal(d.Raw, &back); err != nil || back["futureField"] == nil {
			t.Fatalf("raw %s: %v", d.Raw, err)
		}
		if d.Extra.ConfigsRejected == nil || *d.Extra.ConfigsRejected != 2 || d.Extra.Outcomes["saved"] != 7 ||
			d.Extra.SeqHigh == nil || *d.Extra.SeqHigh != 9 || d.Status.Version != "2.0.0" {
			t.Fatalf("decoded %+v %+v", d.Extra, d.Status)
		}
	})
}

// TestRegistryMigrations: opening twice applies the migration once, in the
// registry's own table, beside the ledger's.
func TestRegistryMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, l := openRegistry(t, dsn)
		if _, err := Open(context.Background(), l.DB(), l.Dialect(), Opts{}); err != nil {
			t.Fatal(err)
		}
		var n int
		want := 0
		if names, _ := fs.Glob(migrations, "migrations/sqlite/*.sql"); true {
			want = len(names)
		}
		if err := r.db.QueryRow(`SELECT count(*) FROM fleet_migrations`).Scan(&n); err != nil || n != want {
			t.Fatalf("fleet_migrations: %d rows, %v", n, err)
		}
		if err := r.db.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version LIKE '%registry%'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("the ledger's migration table holds the registry's: %d, %v", n, err)
		}
		if _, err := Open(context.Background(), l.DB(), "mysql", Opts{}); err == nil {
			t.Fatal("a dialect that is neither sqlite nor postgres was accepted")
		}
	})
}

// TestRegistryConcurrentWriters: several registries (ingests) applying the
// same will and the same Status at once record one transition each.
func TestRegistryConcurrentWriters(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		r, _ := openRegistry(t, dsn)
		const id = "kiosk-reg-06"
		apply(t, r, status(id, true, t0, t0, nil))
		var rs []*Registry
		for range 4 {
			x, _ := openRegistry(t, dsn)
			rs = append(rs, x)
		}
		var wg sync.WaitGroup
		for _, x := range rs {
			wg.Go(func() {
				if _, err := x.Apply(context.Background(), []Message{will(id, t0.Add(time.Minute))}, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ts := transitions(t, r, id); len(ts) != 2 {
			t.Fatalf("transitions %+v, want online then one offline", ts)
		}
	})
}

func TestApplyRefusesBadDevice(t *testing.T) {
	r, _ := openRegistry(t, backends[0].dsn(t))
	m := status("Bad/ID", true, t0, t0, nil)
	if _, err := r.Apply(context.Background(), []Message{m}, nil); err == nil {
		t.Fatal("a bad device id was applied")
	}
}
