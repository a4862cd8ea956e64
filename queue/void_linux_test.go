//go:build linux && (amd64 || arm64)

package queue

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// failFsync makes every fsync and fdatasync fail with EIO from now on (a
// seccomp filter: the disk's answer, as a dying SD card gives it): of the
// whole process with allThreads, else of the calling OS thread only (the
// caller has locked its goroutine to it and lets the goroutine end, which
// ends the thread). It cannot be undone: only a child process uses it.
func failFsync(allThreads bool) error {
	if allThreads {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	flags := uintptr(0)
	if allThreads {
		flags = unix.SECCOMP_FILTER_FLAG_TSYNC
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 2, K: unix.SYS_FSYNC},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, K: unix.SYS_FDATASYNC},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EIO)},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags,
		uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	return nil
}

const voidEnv, voidModeEnv = "QUEUE_VOID_CHILD_DB", "QUEUE_VOID_CHILD_MODE"

// TestVoidChild is the child of TestFailedCommitNeverForwarded: three good
// taps, then the disk's fsync fails, then taps that must fail, then it
// waits to be killed. In mode "once" only one tap meets the failing fsync
// (on a thread of its own) and the taps after it find the disk working.
func TestVoidChild(t *testing.T) {
	path := os.Getenv(voidEnv)
	once := os.Getenv(voidModeEnv) == "once"
	if path == "" {
		t.Skip("child process of TestFailedCommitNeverForwarded")
	}
	var mu sync.Mutex
	var lastID string
	ob, err := Open(path, Opts{MinFreeBytes: -1, NewID: func(at time.Time) (string, error) {
		id, err := NewV7At(at, rand.Reader)
		mu.Lock()
		lastID = id
		mu.Unlock()
		return id, err
	}})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	ctx := context.Background()
	for i := range 3 {
		it, err := ob.Enqueue(ctx, entry(fmt.Sprintf("04%012X", i), "B"))
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		fmt.Println("SAVED", it.ID, it.Seq)
	}
	if once {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if err := failFsync(false); err != nil {
				fmt.Println("SKIP", err)
				os.Exit(0)
			}
			_, err := ob.Enqueue(ctx, entry(fmt.Sprintf("04%012X", 99), "B"))
			mu.Lock()
			id := lastID
			mu.Unlock()
			if err == nil {
				fmt.Println("SAVED", id, 0)
				return
			}
			fmt.Println("FAILED", id, strings.ReplaceAll(err.Error(), "\n", " "))
		}()
		<-done
		for i := range 2 {
			it, err := ob.Enqueue(ctx, entry(fmt.Sprintf("04%012X", 200+i), "B"))
			if err != nil {
				fmt.Println("ERR after the disk recovered:", err)
				os.Exit(3)
			}
			fmt.Println("SAVED", it.ID, it.Seq)
		}
		fmt.Println("READY")
		select {}
	}
	if err := failFsync(true); err != nil {
		fmt.Println("SKIP", err)
		os.Exit(0)
	}
	seen := ""
	for i := range 2 {
		it, err := ob.Enqueue(ctx, entry(fmt.Sprintf("04%012X", 100+i), "B"))
		if err == nil {
			fmt.Println("SAVED", it.ID, it.Seq) // the parent fails the test
			continue
		}
		mu.Lock()
		id := lastID
		mu.Unlock()
		if id == seen { // refused before it got an id
			fmt.Println("REFUSED", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		seen = id
		fmt.Println("FAILED", id, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	fmt.Println("READY")
	select {} // until SIGKILL
}

// A tap answered storage-error is never forwarded: its commit's fsync
// failed, but its frames were in the WAL file, and before the fix a crash
// let SQLite recover them (the tap was then booked).
//
// "failing": the disk keeps failing (the void record fails too, but is
// written where the failed frames were); "once": one fsync fails, and the
// taps after it are saved.
func TestFailedCommitNeverForwarded(t *testing.T) {
	for _, mode := range []string{"failing", "once"} {
		t.Run(mode, func(t *testing.T) { testFailedCommit(t, mode) })
	}
}

func testFailedCommit(t *testing.T, mode string) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestVoidChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), voidEnv+"="+path, voidModeEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	saved := map[string]bool{}
	var failed []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "SAVED":
			saved[f[1]] = true
		case "FAILED":
			failed = append(failed, f[1])
			t.Logf("child: %s", sc.Text())
		case "REFUSED":
			t.Logf("child: %s", sc.Text())
		case "ERR":
			cmd.Process.Kill()
			t.Fatalf("child: %s", sc.Text())
		case "SKIP":
			cmd.Wait()
			t.Skipf("child cannot fail fsync here: %s", sc.Text())
		}
		if f[0] == "READY" {
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	cmd.Wait()
	wantSaved := map[string]int{"failing": 3, "once": 5}[mode]
	if len(saved) != wantSaved || len(failed) == 0 {
		t.Fatalf("child saved %d and failed %d taps; want %d and at least 1 (with fsync failing, a tap was saved?)", len(saved), len(failed), wantSaved)
	}

	ob := openTest(t, path, Opts{MinFreeBytes: -1})
	items, err := ob.Pending(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, it := range items {
		have[it.ID] = true
	}
	for id := range saved {
		if !have[id] {
			t.Errorf("saved tap %s lost", id)
		}
	}
	for _, id := range failed {
		if have[id] {
			t.Errorf("tap %s was answered storage-error but is pending after the crash: it would be booked", id)
		}
	}
	for _, chip := range []int{99, 100} {
		if n, _ := ob.Used(context.Background(), fmt.Sprintf("04%012X", chip), "evt-1", "B"); n != 0 {
			t.Errorf("the failed tap's history row came back: the pre-filter counts it")
		}
	}
	st, _ := ob.Stats(context.Background())
	if st.Pending != wantSaved || st.LastSeq < int64(wantSaved+len(failed)) {
		t.Errorf("stats after the crash %+v (pending 3, seq of the failed taps not reused)", st)
	}
	t.Logf("pending after the crash: %d (%d saved, %d failed before the kill); last seq %d", len(items), len(saved), len(failed), st.LastSeq)
}
