// Package control is kioskd's control socket: a Unix socket carrying one JSON
// object per line each way, one reply per request. kioskctl and the tests
// are its clients. The socket is created mode 0600: only kioskd's own user
// (and root) may tap, read status or identify.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// MaxLine bounds a request line; a longer one is refused.
const MaxLine = 64 << 10

// Request is one control request. Op names the operation; the other fields
// belong to particular ops.
type Request struct {
	Op         string `json:"op"`
	ChipNumber string `json:"chipNumber,omitempty"`
	// Force confirms an op that gives something up (queue-reset).
	Force bool `json:"force,omitempty"`
}

// Handler answers a request with a value to encode as the reply line. A
// reply should carry "ok".
type Handler func(ctx context.Context, req Request) any

// ErrorReply is the reply to a request that failed.
type ErrorReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// Fail makes an ErrorReply.
func Fail(format string, a ...any) ErrorReply {
	return ErrorReply{Error: fmt.Sprintf(format, a...)}
}

// Server serves a control socket.
type Server struct {
	ln net.Listener
	h  Handler
	wg sync.WaitGroup
}

// Listen creates the socket at path (replacing a stale one left by a crash)
// with mode 0600.
func Listen(path string, h Handler) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s: another kioskd is listening", path)
		}
		os.Remove(path)
	}
	// Umask-free: create, then tighten before anyone can have connected
	// meaningfully (the directory is kioskd's own RuntimeDirectory).
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: chmod: %w", err)
	}
	return &Server{ln: ln, h: h}, nil
}

// Serve accepts connections until ctx is done, then waits for the open ones.
func (s *Server) Serve(ctx context.Context) error {
	go func() { <-ctx.Done(); s.ln.Close() }()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.conn(ctx, c)
		}()
	}
}

func (s *Server) conn(ctx context.Context, c net.Conn) {
	defer c.Close()
	// Unblock a read or write in progress when the server stops. AfterFunc
	// registers no goroutine until ctx is done, and stop unregisters it when
	// the connection ends first: a goroutine per connection waiting on ctx
	// would live until kioskd stops (one per status call of a monitor).
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReaderSize(c, 4096)
	enc := json.NewEncoder(c)
	enc.SetEscapeHTML(false)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, errTooLong) {
				enc.Encode(Fail("request longer than %d bytes", MaxLine))
			}
			return
		}
		var req Request
		var reply any
		if err := json.Unmarshal(line, &req); err != nil {
			reply = Fail("request is not a JSON object: %v", err)
		} else {
			reply = s.h(ctx, req)
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := enc.Encode(reply); err != nil {
			return
		}
	}
}

var errTooLong = errors.New("control: line too long")

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, part...)
		if len(line) > MaxLine {
			return nil, errTooLong
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// Close stops listening and removes the socket file.
func (s *Server) Close() error {
	path := s.ln.Addr().String()
	err := s.ln.Close()
	os.Remove(path)
	return err
}

// Call sends req to the socket at path and returns the raw reply line.
func Call(ctx context.Context, path string, req Request) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("control: send: %w", err)
	}
	line, err := readLine(bufio.NewReader(c))
	if err != nil {
		return nil, fmt.Errorf("control: reply: %w", err)
	}
	return line, nil
}
