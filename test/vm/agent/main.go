// Command agent runs inside make vm-test's virtual machine (never on a
// kiosk): the host's one way in. It serves, on the VM's user network only
// (qemu forwards the ports to the host's loopback):
//
//	:7000  HTTP: POST /exec runs the body with /bin/sh as root and answers
//	       {"rc":N,"out":"…"} (stdout and stderr together); GET /ping
//	:7001  each TCP connection spliced to kioskd's control socket, so the
//	       host streams taps and reads their answers as a kioskctl would
//
// The image has no SSH: this is smaller, starts at once and needs no keys.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// Reply is /exec's answer.
type Reply struct {
	RC  int    `json:"rc"`
	Out string `json:"out"`
}

func main() {
	execAddr := flag.String("exec", ":7000", "HTTP `address` of /exec")
	ctlAddr := flag.String("control", ":7001", "`address` spliced to the control socket")
	sock := flag.String("socket", "/run/kioskd/control.sock", "kioskd's control `socket`")
	flag.Parse()
	log.SetFlags(0)
	ln, err := net.Listen("tcp", *ctlAddr)
	if err != nil {
		log.Fatalf("agent: %v", err)
	}
	go splice(ln, *sock)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /exec", runScript)
	srv := &http.Server{Addr: *execAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatalf("agent: %v", srv.ListenAndServe())
}

// runScript runs the request body with sh; ?timeout=DURATION (default 2m).
func runScript(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, fmt.Sprintf("agent: read script: %v", err), http.StatusBadRequest)
		return
	}
	timeout := 2 * time.Minute
	if v := r.URL.Query().Get("timeout"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			http.Error(w, fmt.Sprintf("agent: timeout: %v", err), http.StatusBadRequest)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", string(body))
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	rep := Reply{Out: string(out)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		rep.RC = ee.ExitCode()
		if ctx.Err() != nil {
			rep.Out += fmt.Sprintf("\nagent: timed out after %s", timeout)
		}
	default:
		rep.RC = 127
		rep.Out += fmt.Sprintf("\nagent: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// splice joins every connection on ln to a new one on the Unix socket.
func splice(ln net.Listener, sock string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("agent: accept: %v", err)
		}
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("unix", sock, 5*time.Second)
			if err != nil {
				log.Printf("agent: control socket: %v", err)
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(u, c); done <- struct{}{} }()
			go func() { io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}
