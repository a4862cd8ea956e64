package kioskctl

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/uitpas/tap-kiosk/protocol"
	"github.com/uitpas/tap-kiosk/provisioning"
)

// cmdConfigPush signs a Config for one device and publishes it retained on
// the device's config topic, with the config role's certificate. The ingests
// (subscribed to P/+/config with the fleet's config.pub) record it as the
// device's assignment: what they book the device's checkins by.
func cmdConfigPush(e env, args []string) error {
	fs := newFlags("config push", e)
	caDir := fs.String("ca", "", "the fleet CA `directory` (its config.key signs; its ca.crt checks the broker)")
	broker := fs.String("broker", "", "the fleet broker's `URL`, ssl://host:8883")
	device := fs.String("device", "", "the device `id` the Config is for (bound to it)")
	prefix := fs.String("topic-prefix", protocol.DefaultPrefix, "topic `prefix`")
	cert := fs.String("cert", "", "the config role's certificate `file` (default DIR/"+provisioning.DefaultConfigID+".crt)")
	key := fs.String("key", "", "its key `file` (default DIR/"+provisioning.DefaultConfigID+".key)")
	out := fs.String("out", "", "also write the signed Config to this `file` (for `kiosk-ingest assign`)")
	insecure := fs.Bool("allow-insecure", false, "allow a tcp:// broker without TLS (tests and demos only)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"ca", *caDir}, {"broker", *broker}, {"device", *device}} {
		if err := need(f.name, f.v); err != nil {
			return err
		}
	}
	if !protocol.ValidDeviceID(*device) {
		return usagef("-device %q: not a device id", *device)
	}
	u, err := url.Parse(*broker)
	if err != nil || (u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtts" && !(*insecure && u.Scheme == "tcp")) {
		return usagef("-broker %q: want ssl://host:port (tcp:// only with -allow-insecure)", *broker)
	}
	ca, err := provisioning.LoadCA(*caDir)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	raw, err = withSerial(raw, e)
	if err != nil {
		return err
	}
	signed, err := ca.SignConfigFor(raw, *device, e.now())
	if err != nil {
		return err
	}
	c, _ := protocol.DecodeConfig(signed) // SignConfigFor checked it
	o := paho.NewClientOptions().AddBroker(*broker).SetClientID(provisioning.DefaultConfigID + "-push-" + *device).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(e.timeout)
	if u.Scheme != "tcp" {
		tc, err := pushTLS(*caDir, *cert, *key)
		if err != nil {
			return err
		}
		o.SetTLSConfig(tc)
	}
	client := paho.NewClient(o)
	if t := client.Connect(); !t.WaitTimeout(e.timeout) || t.Error() != nil {
		return fmt.Errorf("connect %s: %v", *broker, tokenErr(t.Error()))
	}
	defer client.Disconnect(250)
	topic := protocol.Topic(*prefix, *device, protocol.KindConfig)
	if t := client.Publish(topic, 1, true, signed); !t.WaitTimeout(e.timeout) || t.Error() != nil {
		return fmt.Errorf("publish %s: %v", topic, tokenErr(t.Error()))
	}
	if *out != "" {
		if err := provisioning.WriteFileAtomic(*out, append(signed, '\n'), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "config serial %d for %s published retained on %s: event %s, %d point(s), %d per %s\n",
		c.Serial, *device, topic, c.EventID, c.Points, c.Constraint.Volume, c.Constraint.Period)
	return nil
}

func tokenErr(err error) error {
	if err == nil {
		return fmt.Errorf("no answer (timeout)")
	}
	return err
}

// withSerial gives a Config file without a serial one: the time in seconds,
// above every serial pushed before it (a kiosk takes only a higher serial).
func withSerial(raw []byte, e env) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if _, ok := m["serial"]; ok {
		return raw, nil
	}
	m["serial"] = e.now().Unix()
	return json.Marshal(m)
}

func pushTLS(caDir, cert, key string) (*tls.Config, error) {
	if cert == "" {
		cert = filepath.Join(caDir, provisioning.DefaultConfigID+".crt")
	}
	if key == "" {
		key = filepath.Join(caDir, provisioning.DefaultConfigID+".key")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("the config role's certificate (kioskctl ca client-cert -name %s): %w", provisioning.DefaultConfigID, err)
	}
	pem, err := os.ReadFile(filepath.Join(caDir, provisioning.CACertFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", provisioning.CACertFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{pair}}, nil
}
