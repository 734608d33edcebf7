package amqpconsumer_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/tlsfiles"
)

// TestTLSClientCertificate pins Config.TLS: over amqps:// to a listener
// that requires a client certificate (a TLS-terminating proxy in front of
// the test broker), the consumer presents the one tlsfiles loaded and
// handles the queue's messages.
func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pki := testenv.NewPKI(t, "amqpconsumer test CA")
	upstream := strings.TrimPrefix(f.broker.URL, "amqp://")
	creds, hostPath, _ := strings.Cut(upstream, "@")
	host, vhost, _ := strings.Cut(hostPath, "/")
	proxy := testenv.StartTLSProxy(t, host, &tls.Config{
		Certificates: []tls.Certificate{pki.Server("rabbitmq", "127.0.0.1").Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pki.Pool(), MinVersion: tls.VersionTLS12,
	})
	client := pki.Client("billing")
	tc, err := tlsfiles.Config{CAFile: pki.CAFile, CertFile: client.CertFile, KeyFile: client.KeyFile}.Load()
	must(t, err)

	const n = 5
	var msgs []amqp.Publishing
	for range n {
		m, _ := message(t, invoicePaid, payment{Invoice: "tls"})
		msgs = append(msgs, m)
	}
	f.publish(msgs...)
	cfg := f.config()
	cfg.URL = "amqps://" + creds + "@" + proxy.Addr + "/" + vhost
	cfg.TLS = tc
	r := f.start(cfg)
	testenv.WaitFor(t, 30*time.Second, "every message handled over amqps", func() bool {
		distinct, _ := f.effects()
		return distinct == n
	})
	must(t, r.stop())
	if proxy.Verified.Load() == 0 {
		t.Fatal("no connection presented a verified client certificate")
	}
	if tc.ServerName != "" {
		t.Errorf("Config.TLS was modified: ServerName %q", tc.ServerName)
	}
}
