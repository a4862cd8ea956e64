package provisioning

import (
	"fmt"
	"strings"

	"github.com/uitpas/tap-kiosk/protocol"
)

// BrokerOpts describe the fleet's Mosquitto (`kioskctl mosquitto-config`).
type BrokerOpts struct {
	Port string // listener port; default 8883
	Bind string // listener address; empty: every interface
	// Certificate files on the broker host.
	CAFile, CertFile, KeyFile string
	ACLFile                   string
	Prefix                    string // topic prefix; default kiosk/v1
	// Ingest are the certificate CNs of the ingests: they read every
	// checkin (also as a shared subscription) and Status and write results;
	// default DefaultIngestID.
	Ingest []string
	// Config are the certificate CNs of central's config publishers: they
	// write configs and nothing else; default DefaultConfigID.
	Config []string
	// Monitor are the certificate CNs that may only read every kiosk's
	// Status (a Prometheus exporter, a dashboard, a support desk's tool);
	// default DefaultMonitorID.
	Monitor []string
	// Signer are the certificate CNs of the renewal signer (`kioskctl ca
	// serve`): it reads every kiosk's CSR and writes certificates; default
	// DefaultSignerID.
	Signer []string
	// CRLFile, when set, is the listener's crlfile: the fleet CA's
	// revocation list (`kioskctl ca crl`). It must exist when Mosquitto
	// starts, and its nextUpdate must stay in the future.
	CRLFile string
	// PersistenceDir, when set, is written as persistence_location.
	PersistenceDir string
}

// DefaultBrokerOpts are the paths of Debian's mosquitto package.
func DefaultBrokerOpts() BrokerOpts {
	return BrokerOpts{Port: "8883", CAFile: "/etc/mosquitto/certs/ca.crt",
		CertFile: "/etc/mosquitto/certs/server.crt", KeyFile: "/etc/mosquitto/certs/server.key",
		ACLFile: "/etc/mosquitto/kiosk.acl", Prefix: protocol.DefaultPrefix, CRLFile: "/etc/mosquitto/certs/crl.pem",
		Ingest: []string{DefaultIngestID}, Config: []string{DefaultConfigID}, Monitor: []string{DefaultMonitorID},
		Signer: []string{DefaultSignerID}, PersistenceDir: "/var/lib/mosquitto/"}
}

func (o BrokerOpts) norm() BrokerOpts {
	if o.Port == "" {
		o.Port = "8883"
	}
	if o.Prefix == "" {
		o.Prefix = protocol.DefaultPrefix
	}
	if len(o.Ingest) == 0 {
		o.Ingest = []string{DefaultIngestID}
	}
	if len(o.Config) == 0 {
		o.Config = []string{DefaultConfigID}
	}
	if len(o.Monitor) == 0 {
		o.Monitor = []string{DefaultMonitorID}
	}
	if len(o.Signer) == 0 {
		o.Signer = []string{DefaultSignerID}
	}
	return o
}

// TLS12Ciphers are the suites the listener offers for TLS 1.2: ECDHE key
// exchange with an AEAD cipher only (no CBC, no SHA-1 MAC, no static RSA).
// The fleet CA issues ECDSA P-256 server certificates, so the ECDSA suites
// are the ones used; the RSA ones serve a broker given an RSA certificate.
// TLS 1.3 suites are all AEAD (Mosquitto's default ciphers_tls1.3).
const TLS12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

// Broker limits per client (Mosquitto applies each to every client alike).
const (
	// MaxPacketSize bounds an MQTT packet: the contract's 4 KiB payload
	// plus the fixed header, topic (prefix, a device id of at most 64
	// characters, kind), packet id and MQTT 5 properties.
	MaxPacketSize = protocol.MaxPayload + 512
	// MaxQueuedMessages and MaxQueuedBytes bound what the broker holds for
	// one client beyond its in-flight window.
	MaxQueuedMessages = 100000
	MaxQueuedBytes    = 64 << 20
	// fleetCheckinsPerSecond is the sizing's fleet: 1000 kiosks at 0.2 tap/s.
	fleetCheckinsPerSecond = 200
)

// Listener is the TLS listener with client certificates as identities: no
// certificate from the fleet CA, no connection; the certificate's CN is the
// user name the ACL's %u stands for, and also the client id, so one kiosk
// cannot take over another's session.
func (o BrokerOpts) Listener() string {
	o = o.norm()
	var b strings.Builder
	fmt.Fprintf(&b, "listener %s", o.Port)
	if o.Bind != "" {
		fmt.Fprintf(&b, " %s", o.Bind)
	}
	fmt.Fprintf(&b, `
cafile %s
certfile %s
keyfile %s
# TLS 1.2 at least; for TLS 1.2 only ECDHE with AEAD suites.
tls_version tlsv1.2
ciphers %s
require_certificate true
use_identity_as_username true
use_username_as_clientid true
allow_anonymous false
acl_file %s
`, o.CAFile, o.CertFile, o.KeyFile, TLS12Ciphers, o.ACLFile)
	if o.CRLFile != "" {
		fmt.Fprintf(&b, `# The fleet CA's revocation list (kioskctl ca crl): reread on SIGHUP
# (systemctl reload mosquitto). Past its nextUpdate every client is refused.
crlfile %s
`, o.CRLFile)
	}
	return b.String()
}

// Fleet holds the settings a fleet needs beyond Mosquitto's defaults
// (persistence off, 20 in flight, 1000 queued then silently dropped, no
// bound on bytes).
func (o BrokerOpts) Fleet() string {
	o = o.norm()
	var b strings.Builder
	b.WriteString(`# Retained configs and statuses, and the sessions of kiosks and ingests,
# survive a broker restart.
persistence true
`)
	if o.PersistenceDir != "" {
		fmt.Fprintf(&b, "persistence_location %s\n", o.PersistenceDir)
	}
	fmt.Fprintf(&b, `autosave_interval 60
# The ingest acknowledges checkins after its ledger commit: let a batch be in
# flight. Kiosks keep their own window (mqtt.window).
max_inflight_messages 1000
# Queue limits, per client (Mosquitto has no per-role limits: every kiosk and
# every central service gets the same). A kiosk keeps its own durable outbox
# and republishes a checkin that has no result after mqtt.retry_after, so the
# broker need not hold a deep backlog for kiosks (what is queued for a kiosk
# is only its few results and its config). The session that needs room is the
# ingest's while the ingest restarts: a 1000-kiosk fleet at 0.2 tap/s each
# sends 200 checkins/s, so %[1]d messages cover about %[3]d minutes; %[2]d MiB
# cover them at up to %[4]d bytes each (checkins are a few hundred bytes). The
# bytes bound the broker's memory: at most %[2]d MiB per client. Beyond
# either limit Mosquitto drops further messages for that client and counts
# them ($SYS/broker/publish/messages/dropped); the kiosks keep those checkins
# in their outboxes and republish them after mqtt.retry_after, so nothing is
# lost, only late.
max_queued_messages %[1]d
max_queued_bytes %[5]d
# Contract payloads are at most 4 KiB; a packet adds its topic and headers.
# A larger packet is refused and its connection dropped.
max_packet_size %[6]d
# Sessions of kiosks gone for a month are dropped (their outbox resends).
persistent_client_expiration 30d
set_tcp_nodelay true
`, MaxQueuedMessages, MaxQueuedBytes>>20, MaxQueuedMessages/fleetCheckinsPerSecond/60,
		MaxQueuedBytes/MaxQueuedMessages, MaxQueuedBytes, MaxPacketSize)
	return b.String()
}

// Conf is the whole mosquitto.conf fragment (for /etc/mosquitto/conf.d/).
func (o BrokerOpts) Conf() string {
	return "# UiTPAS kiosk fleet broker: generated by `kioskctl mosquitto-config`.\n" +
		"# The ACL file comes from `kioskctl mosquitto-config -acl`.\n" +
		"per_listener_settings false\n" + o.Listener() + o.Fleet()
}

// DefaultMonitorID is the CN of central's read-only Status certificate.
const DefaultMonitorID = "monitor.central"

// DefaultConfigID is the CN of central's config publisher's certificate.
const DefaultConfigID = "config.central"

// DefaultSignerID is the CN of the renewal signer's certificate.
const DefaultSignerID = "signer.central"

// ACL is the access control list: each device may write its own checkin
// and status and read its own result and config — the contract's topic
// table, nothing else. Central's certificates each have one role: an
// ingest reads every checkin (also as a shared subscription), every Status
// and every config (what it books by) and writes results; a config publisher writes configs and nothing
// else; a monitor reads every Status and nothing else; the renewal signer
// reads every CSR and writes certificates. A CN listed in two roles gets
// both.
func (o BrokerOpts) ACL() string {
	o = o.norm()
	p := o.Prefix
	var b strings.Builder
	fmt.Fprintf(&b, `# UiTPAS kiosk fleet ACL: generated by `+"`kioskctl mosquitto-config -acl`"+`.
# %%u is the certificate's CN: the device id.
pattern write %[1]s/%%u/checkin
pattern write %[1]s/%%u/status
pattern read %[1]s/%%u/result
pattern read %[1]s/%%u/config
# Renewal: a kiosk sends its CSR and reads its new certificate.
pattern write %[1]s/%%u/csr
pattern read %[1]s/%%u/cert
`, p)
	// Mosquitto takes "user" blocks by name: a CN given two roles must be
	// one block with both roles' lines.
	var names []string
	lines := map[string][]string{}
	add := func(ids []string, role string, topics ...string) {
		for _, id := range ids {
			if _, ok := lines[id]; !ok {
				names = append(names, id)
			}
			lines[id] = append(lines[id], "# "+role)
			lines[id] = append(lines[id], topics...)
		}
	}
	add(o.Ingest, "ingest: reads checkins, Status and configs (the assignments it books by), writes results",
		"topic read "+p+"/+/checkin", "topic read $share/+/"+p+"/+/checkin",
		"topic read "+p+"/+/status", "topic read "+p+"/+/config", "topic write "+p+"/+/result")
	add(o.Config, "config: writes configs only", "topic write "+p+"/+/config")
	add(o.Monitor, "monitor: reads Status only", "topic read "+p+"/+/status")
	add(o.Signer, "signer: reads CSRs, writes certificates (renewal)", "topic read "+p+"/+/csr", "topic write "+p+"/+/cert")
	for _, id := range names {
		fmt.Fprintf(&b, "\nuser %s\n%s\n", id, strings.Join(lines[id], "\n"))
	}
	return b.String()
}
