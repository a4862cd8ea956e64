package ingest

import "testing"

// TestAssignCacheVersions: entries hold for the version they were read at;
// a newer version empties the cache, an older one (a batch that overlapped
// a newer) is not stored, and no assignment is an entry too.
func TestAssignCacheVersions(t *testing.T) {
	c := newAssignCache()
	a := Assignment{DeviceID: "kiosk-a", Event: Event{ID: "evt-1"}}
	got := map[string][]Assignment{}
	if _, miss := c.lookup([]string{"k1"}, got); len(miss) != 1 || len(got) != 0 {
		t.Fatalf("an empty cache: miss %v, got %v", miss, got)
	}
	c.store(3, []string{"k1", "k2"}, map[string][]Assignment{"k1": {a}})
	v, miss := c.lookup([]string{"k1", "k2", "k3"}, got)
	if v != 3 || len(miss) != 1 || miss[0] != 2 || len(got["k1"]) != 1 {
		t.Fatalf("version %d, miss %v, got %v", v, miss, got)
	}
	if as, ok := got["k2"]; !ok || as != nil {
		t.Fatalf("no assignment is not cached as none: %v %v", as, ok)
	}
	c.store(2, []string{"k3"}, map[string][]Assignment{"k3": {a}})
	if _, miss := c.lookup([]string{"k3"}, map[string][]Assignment{}); len(miss) != 1 {
		t.Fatal("an older version's read was stored")
	}
	c.store(4, []string{"k3"}, map[string][]Assignment{"k3": {a}})
	v, miss = c.lookup([]string{"k1", "k3"}, map[string][]Assignment{})
	if v != 4 || len(miss) != 1 || miss[0] != 0 {
		t.Fatalf("after a newer version: version %d, miss %v (k1 of version 3 must be gone)", v, miss)
	}
}
