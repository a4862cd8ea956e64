package mqttfwd

import "time"

// DropConn closes the network connection without a DISCONNECT.
func (f *Forwarder) DropConn() { f.dropConn() }

// SetBackoff shortens the reconnect backoff for tests; call before Run.
func (f *Forwarder) SetBackoff(min, max time.Duration) { f.bmin, f.bmax = min, max }

// Backoff exposes the backoff for attempt n.
func (f *Forwarder) Backoff(n int64) time.Duration { return f.backoff(n) }

// SetConnectTimeout shortens paho's connect timeout for tests; call before Run.
func (f *Forwarder) SetConnectTimeout(d time.Duration) { f.connectTO = d }

// Turns counts the loop's turns (each after its refill): a test waits for
// one to know the loop handled what it was sent.
func (f *Forwarder) Turns() int64 { return f.turns.Load() }

// Attempts is the number of connection attempts since the last connect.
func (f *Forwarder) Attempts() int64 { return f.attempts.Load() }

// Resubscribes counts the subscribes again after a refusal.
func (f *Forwarder) Resubscribes() int64 { return f.resubscribes.Load() }
