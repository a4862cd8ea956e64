package kiosk

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/kiosk/control"
)

// TestTapReplyOffline: offline, the tap reply names the saved screen as the
// one shown first and carries no result (central said nothing in time).
func TestTapReplyOffline(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), fmt.Sprintf("tcp://127.0.0.1:%d", testbroker.FreePort(t)))
	runKiosk(t, cfg, Opts{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := control.Call(ctx, cfg.Control.Socket, control.Request{Op: "tap", ChipNumber: "04A1B2C3D4E5F6"})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(line, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["screen"] != "saved" || raw["outcome"] != "saved" || raw["text"] != "+1 punt gespaard" {
		t.Errorf("reply %s", line)
	}
	if _, ok := raw["result"]; ok {
		t.Errorf("reply %s has a result, but central said nothing", line)
	}
}
