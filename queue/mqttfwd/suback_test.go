package mqttfwd_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/uitpas/tap-kiosk/internal/testbroker"
	"github.com/uitpas/tap-kiosk/internal/waitfor"
	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/queue/mqttfwd"
)

// logBuf collects log lines for a test.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// dynsecPlugin is Mosquitto's dynamic security plugin: it checks
// subscriptions against its ACLs and answers a denied one with SUBACK 0x80.
// (Mosquitto's acl_file does not: it grants every subscription and only
// withholds the messages, see the FIXME in its acl_file__check.)
func dynsecPlugin(t *testing.T) string {
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so", "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
		"/usr/lib/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if testbroker.Required() {
		t.Fatal("Mosquitto's dynamic security plugin is not installed")
	}
	t.Skip("Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is not installed: it is what refuses a subscription in SUBACK")
	return ""
}

// A broker that refuses the result subscription (SUBACK 0x80, as Mosquitto
// 2's dynamic security plugin answers a subscribe its ACL denies) does not
// leave the kiosk "connected" and deaf: the refusal shows in Subscription
// and (once a minute at most) in the log, no checkin goes out that could
// never be answered, the Status still does, and the subscription is tried
// again on the same session until the broker grants it.
func TestSubscriptionRefused(t *testing.T) {
	testbroker.RequireMosquitto(t, "an ACL that refuses the result topic in SUBACK")
	plugin := dynsecPlugin(t)
	dir := t.TempDir()
	tResult := protocol.Topic(protocol.DefaultPrefix, device, protocol.KindResult)
	// Anonymous clients (the kiosk, the fake central, the watchers) may
	// subscribe only to what the anonymous group's role lists: not the
	// results. They may send the plugin its commands: the test lifts the
	// denial by making subscriptions allowed by default, which (unlike a
	// change to a role) does not disconnect the clients.
	conf := `{"defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
 "clients": [], "anonymousGroup": "anon",
 "groups": [{"groupname": "anon", "roles": [{"rolename": "anon"}]}],
 "roles": [{"rolename": "anon", "acls": [
   {"acltype": "subscribePattern", "topic": "kiosk/v1/+/checkin", "allow": true},
   {"acltype": "subscribePattern", "topic": "kiosk/v1/+/status", "allow": true},
   {"acltype": "subscribePattern", "topic": "kiosk/v1/+/config", "allow": true},
   {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": true},
   {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": true}]}]}`
	dyn := filepath.Join(dir, "dynamic-security.json")
	if err := os.WriteFile(dyn, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	br := testbroker.StartOpts(t, testbroker.Opts{Extra: "plugin " + plugin + "\nplugin_opt_config_file " + dyn + "\n"})
	ce := central(t, br)
	st := watch(t, br, protocol.Topic(protocol.DefaultPrefix, device, protocol.KindStatus))

	var logs logBuf
	r := newRig(t, br, mqttfwd.Opts{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.b.String())
			t.Log(br.Log())
		}
	})
	r.enqueue(3)
	r.run()
	waitfor.Cond(t, "the refusal seen", func() bool {
		s := r.f.Subscription()
		return s.Session && slices.Equal(s.Refused, []string{tResult})
	})
	if s := r.f.Subscription(); s.Subscribed || r.f.Connected() {
		t.Fatalf("refused result subscription, yet %+v, connected %v", s, r.f.Connected())
	}
	waitfor.Cond(t, "an online Status although deaf", func() bool { s, ok := st.last(t); return ok && s.Online })
	waitfor.Cond(t, "three more refusals", func() bool { return r.f.Resubscribes() >= 3 })
	if c := r.f.Counters(); c.Published != 0 || ce.Received.Load() != 0 {
		t.Fatalf("checkins published while deaf to their Results: %+v", c)
	}
	if n := logs.count("the broker refused subscriptions"); n != 1 {
		t.Fatalf("%d log lines for the refusal; want 1 (rate-limited):\n%s", n, logs.b.String())
	}
	if r.pending() != 3 {
		t.Fatalf("pending %d", r.pending())
	}

	// Central lifts the denial: the retry gets the subscription, and the
	// queue drains on the same session.
	publish(t, br, "$CONTROL/dynamic-security/v1", []byte(`{"commands":[{"command":"setDefaultACLAccess",`+
		`"acls":[{"acltype":"subscribe","allow":true}]}]}`))
	waitfor.Cond(t, "subscribed after the ACL was fixed", func() bool {
		s := r.f.Subscription()
		return s.Subscribed && len(s.Refused) == 0 && r.f.Connected()
	})
	waitfor.Cond(t, "drain", func() bool { return r.pending() == 0 })
	if logs.count("subscriptions granted") != 1 || logs.count("connection lost") != 0 {
		t.Fatalf("log:\n%s", logs.b.String())
	}
}
