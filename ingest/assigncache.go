package ingest

import "sync"

// assignCache keeps the assignments the set-based path has read, per
// (device, event), between batches: a fleet's kiosks tap at the same few
// events all day, and their assignments change when central decides, not
// with every batch. The cache holds for one version of the assignments
// table (migration 0006: a counter that every statement writing the table
// raises in its own transaction), which each batch reads after its locks;
// on another version the batch reads its pairs afresh and the cache starts
// over. The slices are shared: neither the batches nor the rules change
// them.
type assignCache struct {
	mu      sync.Mutex
	version int64 // of the table the entries were read at; -1 before the first store
	m       map[string][]Assignment
}

// maxAssignEntries bounds the cache (past it, it starts over): enough for
// every kiosk of a large region at a few events.
const maxAssignEntries = 1 << 16

func newAssignCache() *assignCache {
	return &assignCache{version: -1, m: map[string][]Assignment{}}
}

// lookup puts the cached assignments of each key it holds into into (a nil
// slice too: no assignment is an answer as well), and returns the version
// they hold for and the indexes of the keys it does not hold.
func (c *assignCache) lookup(keys []string, into map[string][]Assignment) (version int64, miss []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		if as, ok := c.m[k]; ok {
			into[k] = as
		} else {
			miss = append(miss, i)
		}
	}
	return c.version, miss
}

// store records the assignments of keys (in read) that a batch read at
// version. A newer version than the cache's empties it first; entries read
// at an older one are dropped (a batch that overlapped a newer one).
func (c *assignCache) store(version int64, keys []string, read map[string][]Assignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case version < c.version:
		return
	case version > c.version || len(c.m)+len(keys) > maxAssignEntries:
		c.version = version
		clear(c.m)
	}
	for _, k := range keys {
		c.m[k] = read[k]
	}
}
