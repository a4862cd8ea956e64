package ingest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
)

// sharedSetup starts a real Mosquitto and opens two ledgers on one fresh
// PostgreSQL schema (skipping without either).
func sharedSetup(t *testing.T) (*testbroker.Broker, *Ledger, *Ledger) {
	t.Helper()
	dsn := pgDSN(t)
	testbroker.RequireMosquitto(t, "shared subscriptions with persistent sessions, as Mosquitto serves them")
	b := testbroker.Start(t)
	o := DefaultOpts()
	o.EnrollUnknown = true
	o.Logger = testLogger(t)
	la, lb := openAt(t, dsn, o), openAt(t, dsn, o)
	setup(t, la, Event{ID: "evt-1", Points: 1, Period: "DAY", Volume: 1})
	return b, la, lb
}

// waitResults waits until r holds n Results in all.
func waitResults(t *testing.T, r *results, n int) {
	t.Helper()
	all := 0
	if !waitfor.Within(waitfor.Timeout, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		all = r.all
		return all >= n
	}) {
		t.Fatalf("%d of %d results", all, n)
	}
}

// TestSharedGroupSplitsLoad runs two ingests in one shared subscription
// group ($share/ingest/…, persistent sessions) on one PostgreSQL ledger. 20
// kiosks send 50 checkins each over 40 cards, and republish every tenth:
// every checkin is answered once (a republish once more, with the same
// bytes, whichever ingest got it), each card is booked once for the day, and
// both ingests took a share.
func TestSharedGroupSplitsLoad(t *testing.T) {
	b, la, lb := sharedSetup(t)
	sa, _ := runService(t, la, ServiceOpts{Broker: b.URL(), ClientID: "ingest-a", SharedGroup: "ingest"})
	sb, _ := runService(t, lb, ServiceOpts{Broker: b.URL(), ClientID: "ingest-b", SharedGroup: "ingest"})
	res := subscribeResults(t, b.URL())

	const devices, each, cards = 20, 50, 40
	sent := make([][]protocol.Checkin, devices)
	var wg sync.WaitGroup
	for d := range devices {
		device := fmt.Sprintf("kiosk-share-%02d", d)
		k := connectClient(t, b.URL(), device)
		for i := range each {
			sent[d] = append(sent[d], checkinFor(t, device, int64(i+1), fmt.Sprintf("04%012X", (d*each+i)%cards)))
		}
		wg.Go(func() {
			topic := protocol.Topic(prefix, device, protocol.KindCheckin)
			for i, c := range sent[d] {
				publish(t, k, topic, c.Encode())
				if i%10 == 9 { // the kiosk's retry of an earlier one
					publish(t, k, topic, sent[d][i-5].Encode())
				}
			}
		})
	}
	wg.Wait()
	const republished = devices * each / 10
	waitResults(t, res, devices*each+republished)

	savedPerCard := map[string]int{}
	for d := range devices {
		for i, c := range sent[d] {
			got := res.get(c.ID)
			want := 1
			if i%10 == 4 {
				want = 2
			}
			if len(got) != want {
				t.Fatalf("%s #%d: %d results, want %d", c.DeviceID, i, len(got), want)
			}
			if want == 2 && !bytes.Equal(got[0], got[1]) {
				t.Errorf("republish answered differently:\n%s\n%s", got[0], got[1])
			}
			r, _ := protocol.DecodeResult(got[0])
			if r.Status == protocol.StatusSaved {
				savedPerCard[c.ChipNumber]++
			} else if r.Status != protocol.StatusMaximumReached {
				t.Errorf("%s", got[0])
			}
		}
	}
	for card := range cards {
		if chip := fmt.Sprintf("04%012X", card); savedPerCard[chip] != 1 {
			t.Errorf("card %s saved %d times", chip, savedPerCard[chip])
		}
	}
	ca, cb := sa.Counters(), sb.Counters()
	t.Logf("ingest-a: %d results in %d batches (%d replays); ingest-b: %d in %d (%d replays)",
		ca.Results, ca.Batches, ca.Replays, cb.Results, cb.Batches, cb.Replays)
	if ca.Results == 0 || cb.Results == 0 {
		t.Errorf("load not split: a %d, b %d", ca.Results, cb.Results)
	}
	if ca.Results+cb.Results != devices*each+republished || ca.Replays+cb.Replays != republished {
		t.Errorf("counters a %+v, b %+v", ca, cb)
	}
	if n := countEntries(t, la); n != devices*each {
		t.Errorf("%d ledger rows", n)
	}
}

// TestSharedGroupMemberAway stops one of two ingests of a group and lets the
// kiosks go on. Mosquitto (2.0.11) keeps routing the group's messages round
// robin over every member with a session, the absent one included, and
// queues its share in that persistent session: they are answered when it
// comes back (or sooner by the kiosk's retry landing on the one still up,
// and then again as replays). Every checkin is answered once and booked once.
func TestSharedGroupMemberAway(t *testing.T) {
	b, la, lb := sharedSetup(t)
	sa, _ := runService(t, la, ServiceOpts{Broker: b.URL(), ClientID: "ingest-a", SharedGroup: "ingest"})
	_, stopB := runService(t, lb, ServiceOpts{Broker: b.URL(), ClientID: "ingest-b", SharedGroup: "ingest"})
	stopB()
	res := subscribeResults(t, b.URL())
	k := connectClient(t, b.URL(), "kiosk-away-01")
	var ids []string
	for i := range 20 {
		c := checkinFor(t, "kiosk-away-01", int64(i+1), fmt.Sprintf("04%012X", i))
		ids = append(ids, c.ID)
		publish(t, k, protocol.Topic(prefix, c.DeviceID, protocol.KindCheckin), c.Encode())
	}
	// Every publish was routed (PUBACK) before ingest-b comes back: what it
	// gets now was queued for it while it was away.
	sb2, _ := runService(t, lb, ServiceOpts{Broker: b.URL(), ClientID: "ingest-b", SharedGroup: "ingest"})
	res.wait(t, ids...)
	waitResults(t, res, len(ids))
	ca, cb := sa.Counters(), sb2.Counters()
	t.Logf("while ingest-b was away: ingest-a answered %d, ingest-b %d on its return", ca.Results, cb.Results)
	for _, id := range ids {
		if n := len(res.get(id)); n != 1 {
			t.Errorf("%s: %d results", id, n)
		}
	}
	if ca.Results+cb.Results != int64(len(ids)) {
		t.Errorf("a %+v, b %+v", ca, cb)
	}
	if cb.Results == 0 {
		t.Logf("the broker gave the absent member nothing: it routed only to connected members")
	}
	if n := countEntries(t, la); n != len(ids) {
		t.Errorf("%d ledger rows", n)
	}
}
