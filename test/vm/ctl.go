package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"
)

// ctlConn is one connection to kioskd's control socket: a JSON object per
// line each way, one reply per request.
type ctlConn struct {
	c net.Conn
	r *bufio.Reader
}

func newCtlConn(c net.Conn) *ctlConn { return &ctlConn{c: c, r: bufio.NewReader(c)} }

func (c *ctlConn) Close() error { return c.c.Close() }

func (c *ctlConn) call(req any, reply any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("vm: control write: %w", err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("vm: control read: %w", err)
	}
	if err := json.Unmarshal(line, reply); err != nil {
		return fmt.Errorf("vm: control reply %q: %w", line, err)
	}
	return nil
}

// tapReply is kioskd's answer to a tap.
type tapReply struct {
	OK      bool   `json:"ok"`
	Outcome string `json:"outcome"`
	ID      string `json:"id"`
	Seq     int64  `json:"seq"`
	Error   string `json:"error"`
}

// status is the part of kioskd's status the test reads.
type status struct {
	OK          bool   `json:"ok"`
	Version     string `json:"version"`
	Pending     int    `json:"pending"`
	MQTT        string `json:"mqtt"`
	ClockSynced bool   `json:"clockSynced"`
	Storage     string `json:"storage"`
	Seq         int64  `json:"seq"`
	EventID     string `json:"eventId"`
}

func (c *ctlConn) tap(uid string) (tapReply, error) {
	var r tapReply
	err := c.call(map[string]string{"op": "tap", "chipNumber": uid}, &r)
	return r, err
}

func (c *ctlConn) status() (status, error) {
	var s status
	if err := c.call(map[string]string{"op": "status"}, &s); err != nil {
		return s, err
	}
	if !s.OK {
		return s, fmt.Errorf("vm: status not ok")
	}
	return s, nil
}

// confirmed is a tap kioskd answered saved: it must never be lost.
type confirmed struct {
	ID    string
	Seq   int64
	UID   string
	Phase string // the cut (or "setup", "upgrade", controlPhase) it was made in
}

// controlPhase is the phase of the control run, on the disk that lies: its
// taps may be lost, and its lost seqs given out again.
const controlPhase = "control"

// inControl reports whether t was made in the control run.
func (t confirmed) inControl() bool { return t.Phase == controlPhase }

// cards hands out chip numbers never tapped before in this run (7-byte NXP
// UIDs), so every tap is a new passholder's first of the day: saved.
type cards struct {
	mu   sync.Mutex
	base uint64
	n    uint64
}

func (c *cards) next() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return fmt.Sprintf("04%012X", (c.base+c.n)&0xFFFFFFFFFFFF)
}

// stream taps over a control connection until stop is closed or, without
// reconnect, until the connection breaks (the power cut), and records every
// saved answer as it arrives: an answer read here was given before the cut.
type stream struct {
	mu    sync.Mutex
	saved []confirmed
	other map[string]int // outcomes other than saved, and errors
	done  chan struct{}
	// firstSaved is closed at the first saved answer.
	firstSaved chan struct{}
}

func startStream(m *machine, cs *cards, phase string, stop <-chan struct{}, reconnect bool) *stream {
	firstSaved := make(chan struct{})
	s := &stream{other: map[string]int{}, done: make(chan struct{}), firstSaved: firstSaved}
	var once sync.Once
	go func() {
		defer close(s.done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := m.control()
			if err != nil {
				s.count("connect: " + err.Error())
				if !reconnect {
					return
				}
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for {
				select {
				case <-stop:
					c.Close()
					return
				default:
				}
				uid := cs.next()
				r, err := c.tap(uid)
				if err != nil {
					s.count("error")
					break
				}
				if r.OK && r.Outcome == "saved" && r.ID != "" {
					s.mu.Lock()
					s.saved = append(s.saved, confirmed{ID: r.ID, Seq: r.Seq, UID: uid, Phase: phase})
					s.mu.Unlock()
					once.Do(func() { close(firstSaved) })
				} else {
					s.count(r.Outcome + r.Error)
				}
			}
			c.Close()
			if !reconnect {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return s
}

func (s *stream) count(k string) {
	s.mu.Lock()
	s.other[k]++
	s.mu.Unlock()
}

func (s *stream) confirmed() []confirmed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]confirmed(nil), s.saved...)
}
