package kioskctl

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/uitpas/tap-kiosk/fleetca"
	"github.com/uitpas/tap-kiosk/internal/flagargs"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// caUsage is the ca part of provisioningUsage.
const caUsage = `  ca init -dir DIR [-name CN]
                  once, at central: fleet CA, config-signing key, empty inventory (issued.json) and CRL (crl.pem)
  ca server-cert -dir DIR -host H[,H…] [-name CN] [-days N]
                  the broker's certificate (DIR/server.crt, server.key)
  ca client-cert -dir DIR -name N [-days N] [-host H]
                  a central service's certificate (DIR/N.crt, N.key)
  ca list -dir DIR [-json]
                  every certificate the CA issued: serial, CN, role, validity, days left, revocation
  ca revoke -dir DIR [-reason R] DEVICE|SERIAL
                  revokes a device's (or service's) live certificates, or one by serial; rewrites DIR/crl.pem
  ca crl -dir DIR [-out FILE] [-days N]
                  writes a fresh CRL (DIR/crl.pem, and FILE) valid N days
  ca record -dir DIR FILE…
                  records certificates issued before the inventory existed (bundles, .crt files)
  ca serve -dir DIR -broker URL [-cert FILE] [-key FILE] [-topic-prefix P] [-days N]
                  the renewal signer: answers kiosks' CSRs on P/+/csr with certificates on P/D/cert
`

const crlHint = "copy it to the broker and reload it: sudo install -m 0644 %s /etc/mosquitto/certs/ && sudo systemctl reload mosquitto"

func openCA(e env, dir string) (*fleetca.CA, error) {
	c, err := fleetca.Open(dir)
	if err != nil {
		return nil, err
	}
	c.Now = e.now
	return c, nil
}

func cmdCA(e env, args []string) error {
	if len(args) == 0 {
		return usagef("ca init | server-cert | client-cert | list | revoke | crl | record | serve (see -h)")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("ca "+sub, e)
	dir := fs.String("dir", "", "the fleet CA `directory`")
	switch sub {
	case "init":
		name := fs.String("name", provisioning.DefaultCAName, "the CA's common `name`")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		if err := need("dir", *dir); err != nil {
			return err
		}
		ca, err := fleetca.Init(*dir, *name, e.now(), rand.Reader)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "fleet CA created in %s:\n  %s  CA certificate (public: the broker and every kiosk trust it)\n"+
			"  %s  CA key (secret: keep it at central, backed up)\n  %s  config-signing key (secret)\n"+
			"  %s  config-signing public key\n  %s  inventory of issued certificates\n"+
			"  %s  revocation list (empty; the broker's crlfile)\nCA valid until %s\n",
			*dir, provisioning.CACertFile, provisioning.CAKeyFile, provisioning.ConfigKeyFile,
			provisioning.ConfigPubFile, fleetca.InventoryFile, fleetca.CRLFile, ca.Cert.NotAfter.Format(time.DateOnly))
		return nil
	case "server-cert", "client-cert":
		hosts := fs.String("host", "", "the broker's host `names` and IP addresses, comma-separated (server-cert)")
		name := fs.String("name", provisioning.DefaultIngestID, "the service's certificate `CN`, also its MQTT user name (client-cert)")
		days := fs.Int("days", 0, "validity in `days` (default 825 for servers, 730 for clients)")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		if err := need("dir", *dir); err != nil {
			return err
		}
		ca, err := openCA(e, *dir)
		if err != nil {
			return err
		}
		var cert, key []byte
		var others []fleetca.Record
		base := "server"
		if sub == "server-cert" {
			if err := need("host", *hosts); err != nil {
				return err
			}
			cert, key, others, err = ca.IssueServer(splitList(*hosts), *days)
		} else {
			base = *name
			cert, key, others, err = ca.IssueClient(*name, *days)
		}
		if err != nil {
			return err
		}
		certPath, keyPath := filepath.Join(*dir, base+".crt"), filepath.Join(*dir, base+".key")
		if err := provisioning.WriteFileAtomic(keyPath, key, 0o600); err != nil {
			return err
		}
		if err := provisioning.WriteFileAtomic(certPath, cert, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s and %s (key: secret)\n", certPath, keyPath)
		for _, o := range others {
			fmt.Fprintf(e.stdout, "note: %s still has certificate %s; once the service uses the new one: kioskctl ca revoke -dir %s %s\n",
				o.CN, o, *dir, o.Serial)
		}
		return nil
	case "list":
		asJSON := fs.Bool("json", false, "print JSON (one object per certificate, without the PEM)")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		if err := need("dir", *dir); err != nil {
			return err
		}
		return caList(e, *dir, *asJSON)
	case "revoke":
		reason := fs.String("reason", "unspecified", "`reason`: "+fleetca.ReasonNames)
		pos, err := parse(fs, args, 1)
		if err != nil {
			return err
		}
		if err := need("dir", *dir); err != nil {
			return err
		}
		ca, err := openCA(e, *dir)
		if err != nil {
			return err
		}
		done, err := ca.Revoke(pos[0], *reason)
		if errors.Is(err, fleetca.ErrNoneLive) {
			fmt.Fprintf(e.stdout, "nothing to revoke: %v\n", err)
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range done {
			fmt.Fprintf(e.stdout, "revoked %s (%s)\n", r, r.Reason)
		}
		crlPath := filepath.Join(*dir, fleetca.CRLFile)
		fmt.Fprintf(e.stdout, "%s rewritten; "+crlHint+"\n", crlPath, crlPath)
		return nil
	case "crl":
		out := fs.String("out", "", "also write the CRL to this `file` (the broker's crlfile)")
		days := fs.Int("days", fleetca.DefaultCRLDays, "the CRL's validity in `days` (its nextUpdate; past it the broker refuses every client)")
		if _, err := parse(fs, args, 0); err != nil {
			return err
		}
		if err := need("dir", *dir); err != nil {
			return err
		}
		if *days < 1 || *days > 3650 {
			return usagef("-days %d: 1 to 3650", *days)
		}
		ca, err := openCA(e, *dir)
		if err != nil {
			return err
		}
		ca.CRLDays = *days
		pem, err := ca.WriteCRL()
		if err != nil {
			return err
		}
		if *out != "" {
			if err := provisioning.WriteFileAtomic(*out, pem, 0o644); err != nil {
				return err
			}
		}
		crl, err := fleetca.ParseCRL(pem, ca.Cert)
		if err != nil {
			return err
		}
		where := filepath.Join(*dir, fleetca.CRLFile)
		if *out != "" {
			where += " and " + *out
		}
		fmt.Fprintf(e.stdout, "CRL number %s: %d revoked, valid until %s; written to %s\n",
			crl.Number, len(crl.RevokedCertificateEntries), crl.NextUpdate.Format(time.DateOnly), where)
		return nil
	case "record":
		files, err := parseAny(fs, args)
		if err != nil {
			return err
		}
		if err := need("dir", *dir); err != nil {
			return err
		}
		if len(files) == 0 {
			return usagef("give the certificate or bundle files to record")
		}
		ca, err := openCA(e, *dir)
		if err != nil {
			return err
		}
		return caRecord(e, ca, files)
	case "serve":
		return caServe(e, fs, dir, args)
	}
	return usagef("unknown ca command %q: init | server-cert | client-cert | list | revoke | crl | record | serve", sub)
}

// listEntry is a record as `ca list -json` prints it.
type listEntry struct {
	Serial    string     `json:"serial"`
	CN        string     `json:"cn"`
	Role      string     `json:"role"`
	NotBefore time.Time  `json:"notBefore"`
	NotAfter  time.Time  `json:"notAfter"`
	DaysLeft  int        `json:"daysLeft"`
	State     string     `json:"state"`
	Via       string     `json:"via"`
	IssuedAt  time.Time  `json:"issuedAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Key       string     `json:"key"`
}

func caList(e env, dir string, asJSON bool) error {
	ca, err := openCA(e, dir)
	if err != nil {
		return err
	}
	inv, err := ca.Inventory()
	if err != nil {
		return err
	}
	now := e.now()
	certs := slices.Clone(inv.Certs)
	slices.SortStableFunc(certs, func(a, b fleetca.Record) int {
		if c := strings.Compare(a.CN, b.CN); c != 0 {
			return c
		}
		return a.NotAfter.Compare(b.NotAfter)
	})
	if asJSON {
		out := make([]listEntry, 0, len(certs))
		for _, r := range certs {
			out = append(out, listEntry{Serial: r.Serial, CN: r.CN, Role: r.Role, NotBefore: r.NotBefore, NotAfter: r.NotAfter,
				DaysLeft: r.DaysLeft(now), State: r.State(now), Via: r.Via, IssuedAt: r.IssuedAt, RevokedAt: r.RevokedAt,
				Reason: r.Reason, Key: r.Key})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		_, err := fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tCN\tROLE\tNOT BEFORE\tNOT AFTER\tDAYS LEFT\tSTATE\tVIA")
	for _, r := range certs {
		state := r.State(now)
		if r.RevokedAt != nil {
			state += " " + r.RevokedAt.Format(time.DateOnly) + " (" + r.Reason + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Serial, r.CN, r.Role, r.NotBefore.Format(time.DateOnly),
			r.NotAfter.Format(time.DateOnly), r.DaysLeft(now), state, r.Via)
	}
	w.Flush()
	crl, err := ca.LoadCRL()
	switch {
	case err != nil:
		fmt.Fprintf(e.stderr, "warning: %v\n", err)
	default:
		fmt.Fprintf(e.stdout, "CRL number %s: %d revoked, valid until %s\n", crl.Number, len(crl.RevokedCertificateEntries),
			crl.NextUpdate.Format(time.DateOnly))
		if w := fleetca.CRLWarning(crl, now); w != "" {
			fmt.Fprintf(e.stderr, "warning: %s\n", w)
		}
	}
	return nil
}

// caRecord records the certificates in files: PEM certificates (every one
// in the file) or bundle files (their clientCert).
func caRecord(e env, ca *fleetca.CA, files []string) error {
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var certs [][]byte
		if b, err := provisioning.ParseBundle(data); err == nil {
			certs = append(certs, []byte(b.ClientCert))
		} else {
			certs = pemCerts(data)
		}
		if len(certs) == 0 {
			return fmt.Errorf("%s: neither a bundle nor a PEM certificate", f)
		}
		for _, c := range certs {
			rec, added, err := ca.Record(c)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if added {
				n++
				fmt.Fprintf(e.stdout, "recorded %s from %s\n", rec, f)
			} else {
				fmt.Fprintf(e.stdout, "already recorded: %s\n", rec)
			}
		}
	}
	fmt.Fprintf(e.stdout, "%d certificates recorded\n", n)
	return nil
}

func caServe(e env, fs *flag.FlagSet, dir *string, args []string) error {
	broker := fs.String("broker", "", "the fleet broker's `URL`, ssl://host:8883")
	certFile := fs.String("cert", "", "the signer's client certificate `file` (default DIR/"+provisioning.DefaultSignerID+".crt, role signer in the ACL)")
	keyFile := fs.String("key", "", "its key `file` (default DIR/"+provisioning.DefaultSignerID+".key)")
	prefix := fs.String("topic-prefix", "", "topic `prefix` (default kiosk/v1)")
	days := fs.Int("days", provisioning.DefaultCertDays, "validity of renewed certificates in `days`")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"dir", *dir}, {"broker", *broker}} {
		if err := need(f.name, f.v); err != nil {
			return err
		}
	}
	if *certFile == "" {
		*certFile = filepath.Join(*dir, provisioning.DefaultSignerID+".crt")
	}
	if *keyFile == "" {
		*keyFile = filepath.Join(*dir, provisioning.DefaultSignerID+".key")
	}
	ca, err := openCA(e, *dir)
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("signer certificate: %w (make one: kioskctl ca client-cert -dir %s -name %s)", err, *dir, provisioning.DefaultSignerID)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	s, err := fleetca.NewSigner(ca, fleetca.SignerOpts{Broker: *broker, Prefix: *prefix, Days: *days, Logger: log,
		TLS: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{pair}}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return s.Run(ctx)
}

// parseAny is parse for any number of positional arguments.
func parseAny(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := flagargs.Parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, usageErr{err.Error()}
	}
	return pos, err
}

// pemCerts returns every PEM CERTIFICATE block in b, each as PEM.
func pemCerts(b []byte) [][]byte {
	var out [][]byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return out
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(blk))
		}
	}
}
