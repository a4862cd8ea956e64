package provisioning

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAwaitResult: tap.await_result defaults to 300ms, takes 0 (never wait)
// up to 2s, and any other value, or a bare number, stops kioskd naming the
// key.
func TestAwaitResult(t *testing.T) {
	c, err := Parse("kioskd.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tap.AwaitResult != 300*time.Millisecond {
		t.Fatalf("default %s, want 300ms", c.Tap.AwaitResult)
	}
	for body, want := range map[string]time.Duration{`await_result = "0s"`: 0, `await_result = "0"`: 0,
		`await_result = "2s"`: 2 * time.Second, `await_result = "150ms"`: 150 * time.Millisecond} {
		c, err := Parse("kioskd.toml", []byte(addToSection(good, "tap", body)))
		if err != nil || c.Tap.AwaitResult != want {
			t.Errorf("%s: %v %v, want %s", body, c.Tap.AwaitResult, err, want)
		}
	}
	for _, body := range []string{`await_result = "-1ms"`, `await_result = "3s"`, `await_result = 300`,
		`await_result = "soon"`} {
		_, err := Parse("kioskd.toml", []byte(addToSection(good, "tap", body)))
		var ke *KeyError
		if !errors.As(err, &ke) || !errors.Is(err, ErrConfig) || !strings.HasPrefix(ke.Key, "tap.await_result") ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, want one line naming tap.await_result", body, err)
		}
	}
}
