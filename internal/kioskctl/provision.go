package kioskctl

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/kiosk/control"
	"github.com/uitpas/tap-kiosk/provisioning"
	"github.com/uitpas/tap-kiosk/queue"
)

const defaultConfig = "/etc/kioskd/kioskd.toml"

// usageErr is a bad command line: exit 2.
type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageErr{fmt.Sprintf(format, a...)} }

// env is what the provisioning commands get from main.
type env struct {
	stdout, stderr io.Writer
	socket         string // -socket when given explicitly, else ""
	timeout        time.Duration
	now            func() time.Time
}

// provisioningCommands are dispatched here by main.
var provisioningCommands = map[string]func(e env, args []string) error{
	"identity":         cmdIdentity,
	"ca":               cmdCA,
	"provision":        cmdProvision,
	"mosquitto-config": cmdMosquittoConfig,
	"config":           cmdConfig,
	"factory-reset":    cmdFactoryReset,
}

const provisioningUsage = `
provisioning (see the README, "Setting up a kiosk"):
  identity [-config FILE] [-csr FILE]
                  the kiosk's device id, pairing code and CSR (creates the key if kioskd has not)
` + caUsage + `  provision -ca DIR -id FILE -code CODE -broker URL [-device ID] [-event FILE]
            [-topic-prefix P] [-days N] [-allow-insecure] [-replace] -out BUNDLE
                  checks the pairing code, signs the CSR, writes the kiosk's bundle; a device that
                  has a valid certificate needs -replace, which revokes it
  provision apply [-config FILE] [-replace-trust] BUNDLE
                  on the kiosk: installs the bundle; kioskd connects at once (a bundle with
                  another CA or config key than the one in force needs -replace-trust)
  mosquitto-config [-certs DIR] [-port N] [-bind ADDR] [-acl-file FILE] [-topic-prefix P]
                   [-persistence DIR] [-ingest CN[,CN…]] [-config CN[,CN…]] [-monitor CN[,CN…]]
                   [-signer CN[,CN…]] [-acl]
                  the fleet broker's configuration (or, with -acl, its ACL file)
  config sign -ca DIR [-device ID] FILE
                  signs a Config for the retained config topic (bound to device ID)
  config push -ca DIR -broker URL -device ID [-cert F -key F] [-topic-prefix P] [-out F] FILE
                  assigns an event: signs the Config for the device and publishes it retained on its
                  config topic with the config role's certificate; the ingests record the assignment
  factory-reset [-config FILE] [-force]
                  wipes identity, bundle, config and queue (kioskd stopped)
`

func runProvisioning(cmd string, e env, args []string) int {
	err := provisioningCommands[cmd](e, args)
	var ue usageErr
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "kioskctl %s: %s\n", cmd, ue.msg)
		return 2
	default:
		fmt.Fprintf(e.stderr, "kioskctl %s: %v\n", cmd, err)
		return 1
	}
}

func newFlags(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("kioskctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parse parses flags; positional arguments may also come before flags
// (`provision apply BUNDLE -config FILE`).
func parse(fs *flag.FlagSet, args []string, nargs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErr{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != nargs {
		return nil, usagef("want %d argument(s), got %q (see -h)", nargs, pos)
	}
	return pos, nil
}

func need(name, v string) error {
	if v == "" {
		return usagef("-%s is required (see -h)", name)
	}
	return nil
}

func cmdIdentity(e env, args []string) error {
	fs := newFlags("identity", e)
	cfgPath := fs.String("config", defaultConfig, "kioskd's configuration `file`")
	csrOut := fs.String("csr", "", "write the CSR to `file` instead of printing it")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := provisioning.Load(*cfgPath)
	if err != nil {
		return err
	}
	id, created, err := provisioning.LoadOrCreateIdentity(c.StateDir, c.DeviceID, rand.Reader)
	if err != nil {
		return err
	}
	csr, err := id.CSR(rand.Reader)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(e.stderr, "kioskctl identity: created the device key in %s\n", c.StateDir)
	}
	fmt.Fprintf(e.stdout, "device id:    %s\npairing code: %s\n", id.DeviceID, id.PairingCode())
	if *csrOut != "" {
		return os.WriteFile(*csrOut, csr, 0o644)
	}
	_, err = e.stdout.Write(csr)
	return err
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdProvision(e env, args []string) error {
	if len(args) > 0 && args[0] == "apply" {
		return cmdApply(e, args[1:])
	}
	fs := newFlags("provision", e)
	caDir := fs.String("ca", "", "the fleet CA `directory`")
	idFile := fs.String("id", "", "the kiosk's `file` from `kioskctl identity` (or just its CSR)")
	code := fs.String("code", "", "the pairing `code` shown on the kiosk's screen")
	device := fs.String("device", "", "the device `id` shown on the kiosk's screen (checked against the CSR)")
	broker := fs.String("broker", "", "the fleet broker's `URL`, ssl://host:8883")
	prefix := fs.String("topic-prefix", "", "topic `prefix` (default kiosk/v1)")
	event := fs.String("event", "", "initial event: a Config as JSON `file` (signed here)")
	days := fs.Int("days", provisioning.DefaultCertDays, "client certificate validity in `days`")
	insecure := fs.Bool("allow-insecure", false, "allow a tcp:// broker (tests and demos only)")
	replace := fs.Bool("replace", false, "the device has a valid certificate: issue a new one and revoke the old (a new key, a lost bundle)")
	out := fs.String("out", "", "where to write the bundle `file`")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"ca", *caDir}, {"id", *idFile}, {"code", *code}, {"broker", *broker}, {"out", *out}} {
		if err := need(f.name, f.v); err != nil {
			return err
		}
	}
	ca, err := openCA(e, *caDir)
	if err != nil {
		return err
	}
	csr, err := os.ReadFile(*idFile)
	if err != nil {
		return err
	}
	req := provisioning.ProvisionRequest{CSR: csr, Code: *code, DeviceID: *device, Broker: *broker,
		AllowInsecure: *insecure, Prefix: *prefix, Days: *days, Now: e.now(), Rand: rand.Reader}
	if *event != "" {
		if req.Config, err = os.ReadFile(*event); err != nil {
			return err
		}
	}
	b, revoked, err := ca.Provision(req, *replace)
	if err != nil {
		return err
	}
	if err := provisioning.WriteFileAtomic(*out, b.Encode(), 0o644); err != nil {
		return err
	}
	for _, r := range revoked {
		fmt.Fprintf(e.stdout, "-replace: revoked the old certificate %s\n", r)
	}
	if len(revoked) > 0 {
		crlPath := filepath.Join(*caDir, fleetca.CRLFile)
		fmt.Fprintf(e.stdout, "%s rewritten; "+crlHint+"\n", crlPath, crlPath)
	}
	fmt.Fprintf(e.stdout, "bundle for %s written to %s (no secrets in it); on the kiosk: kioskctl provision apply %s\n",
		b.DeviceID, *out, filepath.Base(*out))
	return nil
}

func cmdApply(e env, args []string) error {
	fs := newFlags("provision apply", e)
	cfgPath := fs.String("config", defaultConfig, "kioskd's configuration `file`")
	replace := fs.Bool("replace-trust", false, "accept a bundle with another CA or config-signing key than the ones in force (a move to another fleet)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	c, err := provisioning.Load(*cfgPath)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	b, err := provisioning.ParseBundle(data)
	if err != nil {
		return err
	}
	id, err := provisioning.LoadIdentity(c.StateDir, c.DeviceID)
	if err != nil {
		return err
	}
	l, replaced, err := b.ApplyTrust(c.StateDir, id, c.MQTT.AllowInsecure, *replace)
	if err != nil {
		return err
	}
	if replaced {
		fmt.Fprintf(e.stderr, "kioskctl provision apply: -replace-trust: the fleet trust in force (CA, config-signing key) is replaced by the bundle's\n")
	}
	fmt.Fprintf(e.stdout, "bundle applied: %s, broker %s, certificate valid until %s\n",
		c.DeviceID, l.Broker, l.ClientCert.NotAfter.Format(time.DateOnly))
	socket := e.socket
	if socket == "" {
		socket = c.Control.Socket
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	line, err := control.Call(ctx, socket, control.Request{Op: "reload"})
	if err != nil {
		fmt.Fprintf(e.stdout, "kioskd is not running (%v); it uses the bundle when it starts\n", err)
		return nil
	}
	fmt.Fprintln(e.stdout, string(line))
	var r struct {
		OK          bool   `json:"ok"`
		Provisioned bool   `json:"provisioned"`
		Error       string `json:"error"`
	}
	if json.Unmarshal(line, &r) != nil || !r.OK || !r.Provisioned {
		return fmt.Errorf("kioskd did not take the bundle: %s", r.Error)
	}
	return nil
}

func cmdMosquittoConfig(e env, args []string) error {
	fs := newFlags("mosquitto-config", e)
	o := provisioning.DefaultBrokerOpts()
	certs := fs.String("certs", "/etc/mosquitto/certs", "`directory` on the broker host with ca.crt, server.crt, server.key")
	fs.StringVar(&o.Port, "port", o.Port, "TLS listener `port`")
	fs.StringVar(&o.Bind, "bind", "", "listen `address` (default: every interface)")
	fs.StringVar(&o.ACLFile, "acl-file", o.ACLFile, "where the ACL `file` will be (write it with -acl)")
	fs.StringVar(&o.Prefix, "topic-prefix", o.Prefix, "topic `prefix`")
	fs.StringVar(&o.PersistenceDir, "persistence", o.PersistenceDir, "persistence `directory` (empty: Mosquitto's default)")
	ingest := fs.String("ingest", provisioning.DefaultIngestID, "ingests' certificate `CNs`, comma-separated (read checkins and Status, write results)")
	config := fs.String("config", provisioning.DefaultConfigID, "config publishers' certificate `CNs`, comma-separated (write configs, nothing else)")
	monitor := fs.String("monitor", provisioning.DefaultMonitorID, "read-only monitors' certificate `CNs`, comma-separated (read every Status, nothing else)")
	signer := fs.String("signer", provisioning.DefaultSignerID, "renewal signers' certificate `CNs`, comma-separated (read every CSR, write certificates)")
	acl := fs.Bool("acl", false, "print the ACL file instead of the configuration")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	o.Ingest = splitList(*ingest)
	o.Config = splitList(*config)
	o.Monitor = splitList(*monitor)
	o.Signer = splitList(*signer)
	o.CAFile = filepath.Join(*certs, provisioning.CACertFile)
	o.CRLFile = filepath.Join(*certs, fleetca.CRLFile)
	o.CertFile = filepath.Join(*certs, "server.crt")
	o.KeyFile = filepath.Join(*certs, "server.key")
	if *acl {
		_, err := io.WriteString(e.stdout, o.ACL())
		return err
	}
	_, err := io.WriteString(e.stdout, o.Conf())
	return err
}

func cmdConfig(e env, args []string) error {
	if len(args) > 0 && args[0] == "push" {
		return cmdConfigPush(e, args[1:]) // push.go
	}
	if len(args) == 0 || args[0] != "sign" {
		return usagef("config sign -ca DIR [-device ID] FILE | config push -ca DIR -broker URL -device ID FILE")
	}
	fs := newFlags("config sign", e)
	caDir := fs.String("ca", "", "the fleet CA `directory` (its config.key signs)")
	device := fs.String("device", "", "bind the Config to this device `id` (its deviceId; another kiosk refuses it)")
	pos, err := parse(fs, args[1:], 1)
	if err != nil {
		return err
	}
	if err := need("ca", *caDir); err != nil {
		return err
	}
	ca, err := provisioning.LoadCA(*caDir)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	signed, err := ca.SignConfigFor(raw, *device, e.now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", signed)
	return err
}

// stateFiles are what factory-reset removes from state_dir. The seq file
// (queue.seq) stays: the device id is the same after a reset, and central
// must never see one of its seqs twice. Set-aside queues
// (queue.db.unusable-*) stay too: they are a technician's to delete.
var stateFiles = []string{provisioning.IdentityFile, provisioning.BundleFile, provisioning.RemoteConfigFile,
	"queue.db", "queue.db-wal", "queue.db-shm", "queue.db-journal", "queue.db.reserve", "queue-fault.json", provisioning.TrustFile}

func cmdFactoryReset(e env, args []string) error {
	fs := newFlags("factory-reset", e)
	cfgPath := fs.String("config", defaultConfig, "kioskd's configuration `file`")
	force := fs.Bool("force", false, "reset even though checkins are pending (they are lost)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	c, err := provisioning.Load(*cfgPath)
	if err != nil {
		return err
	}
	socket := e.socket
	if socket == "" {
		socket = c.Control.Socket
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := control.Call(ctx, socket, control.Request{Op: "status"}); err == nil {
		return errors.New("kioskd is running: stop it first (sudo systemctl stop kioskd)")
	}
	// Nothing in the state directory is followed: a link there (put by
	// whoever could write it) must not make root read or write elsewhere.
	for _, f := range stateFiles {
		p := filepath.Join(c.StateDir, f)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 && !*force {
			return fmt.Errorf("refused: %s is a symbolic link (not followed); -force removes the link itself", p)
		}
	}
	pending := 0
	qpath := c.QueuePath()
	if fi, err := os.Lstat(qpath); err == nil && fi.Mode().IsRegular() {
		// Read-only and best effort: a damaged queue is counted as far as
		// it can be read, and -force still wipes it.
		pending, err = queue.CountPending(qpath)
		if err != nil && !*force {
			return fmt.Errorf("cannot read the whole queue (at least %d pending; use -force to wipe it anyway): %w", pending, err)
		}
	}
	if pending > 0 && !*force {
		return fmt.Errorf("refused: %d checkins are not yet delivered to central; connect the kiosk and wait "+
			"until `kioskctl status` shows pending 0, or add -force to lose them", pending)
	}
	removed := 0
	for _, f := range stateFiles {
		err := os.Remove(filepath.Join(c.StateDir, f))
		if err == nil {
			removed++
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(c.StateDir, ".*.tmp-*")); len(tmps) > 0 {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	if pending > 0 {
		fmt.Fprintf(e.stdout, "factory reset with -force: %d pending checkins were lost\n", pending)
	}
	fmt.Fprintf(e.stdout, "factory reset: %d files removed from %s; at its next start kioskd makes a new key and shows a new pairing code\n",
		removed, c.StateDir)
	return nil
}
