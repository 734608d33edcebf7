package kafkasecurity_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
	"github.com/firstunicorn/messagekit-go/pkg/tlsfiles"
)

// secured starts a kfake with a TLS listener (certificate for 127.0.0.1
// from pki), SASL users and ACLs.
func secured(t *testing.T, pki *testenv.PKI, mtls bool, opts ...kfake.Opt) []string {
	t.Helper()
	server := pki.Server("kafka", "127.0.0.1", "localhost")
	tc := &tls.Config{Certificates: []tls.Certificate{server.Cert}, MinVersion: tls.VersionTLS12}
	if mtls {
		tc.ClientAuth, tc.ClientCAs = tls.RequireAndVerifyClientCert, pki.Pool()
	}
	return testenv.KafkaWith(t, testenv.KafkaOptions{Topics: []string{"orders"}, Fake: append([]kfake.Opt{
		kfake.TLS(tc), kfake.EnableSASL(), kfake.Superuser(kafkasecurity.SCRAMSHA512, "admin", "admin-secret"),
	}, opts...)}).Brokers
}

// produce sends one record to topic with c, the way the binaries connect.
func produce(t *testing.T, brokers []string, c kafkasecurity.Config, topic string) error {
	t.Helper()
	sc, err := c.NewSarama("kafkasecurity-test")
	if err != nil {
		return err
	}
	sc.Producer.Return.Successes = true
	sc.Producer.Retry.Max = 0
	sc.Metadata.Retry.Max = 0
	p, err := sarama.NewSyncProducer(brokers, sc)
	if err != nil {
		return c.Explain(err)
	}
	defer func() { _ = p.Close() }()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("x")})
	return c.Explain(err)
}

// TestConnect pins that every mechanism works over TLS with the right
// credentials, and that each operator mistake fails with an error that
// says what was tried (mechanism, user, TLS) and never the password.
func TestConnect(t *testing.T) {
	pki := testenv.NewPKI(t, "test CA")
	writer := kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "orders", Pattern: kmsg.ACLResourcePatternTypeLiteral,
		Operation: kmsg.ACLOperationWrite, Allow: true}
	brokers := secured(t, pki, false,
		kfake.EnableACLs(),
		kfake.User(kafkasecurity.SCRAMSHA512, "bridge", "bridge-secret-512", writer),
		kfake.User(kafkasecurity.SCRAMSHA256, "relay", "relay-secret-256", writer),
		kfake.User(kafkasecurity.PLAIN, "admin-api", "plain-secret", writer),
		kfake.User(kafkasecurity.SCRAMSHA512, "reader", "reader-secret"), // no ACL
	)
	withCA := tlsfiles.Config{CAFile: pki.CAFile}
	other := testenv.NewPKI(t, "another CA")

	for _, tt := range []struct {
		name    string
		cfg     kafkasecurity.Config
		wantErr []string // substrings of the error; none: success
	}{
		{"SCRAM-SHA-512", kafkasecurity.Config{TLSFiles: withCA, Mechanism: kafkasecurity.SCRAMSHA512, Username: "bridge", Password: "bridge-secret-512"}, nil},
		{"SCRAM-SHA-256", kafkasecurity.Config{TLSFiles: withCA, Mechanism: kafkasecurity.SCRAMSHA256, Username: "relay", Password: "relay-secret-256"}, nil},
		{"PLAIN", kafkasecurity.Config{TLSFiles: withCA, Mechanism: kafkasecurity.PLAIN, Username: "admin-api", Password: "plain-secret"}, nil},
		{"wrong password", kafkasecurity.Config{TLSFiles: withCA, Mechanism: kafkasecurity.SCRAMSHA512, Username: "bridge", Password: "wrong-password-1"},
			[]string{"SASL SCRAM-SHA-512 as user bridge", "TLS on", "check the SASL user, password and mechanism"}},
		{"wrong mechanism", kafkasecurity.Config{TLSFiles: withCA, Mechanism: kafkasecurity.SCRAMSHA256, Username: "bridge", Password: "bridge-secret-512"},
			[]string{"SASL SCRAM-SHA-256 as user bridge"}},
		{"untrusted CA", kafkasecurity.Config{TLSFiles: tlsfiles.Config{CAFile: other.CAFile}, Mechanism: kafkasecurity.SCRAMSHA512, Username: "bridge", Password: "bridge-secret-512"},
			[]string{"certificate signed by unknown authority", "CA file " + other.CAFile}},
		{"system roots", kafkasecurity.Config{TLS: true, Mechanism: kafkasecurity.SCRAMSHA512, Username: "bridge", Password: "bridge-secret-512"},
			[]string{"certificate signed by unknown authority", "system roots"}},
		{"wrong host", kafkasecurity.Config{TLSFiles: tlsfiles.Config{CAFile: pki.CAFile, ServerName: "kafka.example.com"}, Mechanism: kafkasecurity.SCRAMSHA512, Username: "bridge", Password: "bridge-secret-512"},
			[]string{"not kafka.example.com", "server name kafka.example.com"}},
		{"plaintext client", kafkasecurity.Config{Mechanism: kafkasecurity.SCRAMSHA512, Username: "bridge", Password: "bridge-secret-512"},
			[]string{"TLS off", "whether the listener wants TLS"}},
		{"missing ACL", kafkasecurity.Config{TLSFiles: withCA, Mechanism: kafkasecurity.SCRAMSHA512, Username: "reader", Password: "reader-secret"},
			[]string{"uthoriz", "as user reader"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := produce(t, brokers, tt.cfg, "orders")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("produce: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("produce succeeded")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// TestMutualTLS pins that a client certificate is sent: a listener that
// requires one accepts the client with it and refuses the client without.
func TestMutualTLS(t *testing.T) {
	pki := testenv.NewPKI(t, "test CA")
	brokers := secured(t, pki, true)
	client := pki.Client("bridge")
	base := kafkasecurity.Config{Mechanism: kafkasecurity.SCRAMSHA512, Username: "admin", Password: "admin-secret"}
	with := base
	with.TLSFiles = tlsfiles.Config{CAFile: pki.CAFile, CertFile: client.CertFile, KeyFile: client.KeyFile}
	if err := produce(t, brokers, with, "orders"); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	without := base
	without.TLSFiles = tlsfiles.Config{CAFile: pki.CAFile}
	if err := produce(t, brokers, without, "orders"); err == nil {
		t.Fatal("without a client certificate: produce succeeded")
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  kafkasecurity.Config
		want string
	}{
		{kafkasecurity.Config{}, ""},
		{kafkasecurity.Config{Mechanism: "scram-sha-512", Username: "u", Password: "p"}, "unknown SASL mechanism"},
		{kafkasecurity.Config{Mechanism: kafkasecurity.PLAIN, Password: "p"}, "needs a user name"},
		{kafkasecurity.Config{Mechanism: kafkasecurity.PLAIN, Username: "u"}, "needs a password"},
		{kafkasecurity.Config{Username: "u"}, "without a SASL mechanism"},
	} {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%s) = %v, want %q", tt.cfg.Describe(), err, tt.want)
		}
	}
	_, err := kafkasecurity.Config{TLSFiles: tlsfiles.Config{CAFile: "/nonexistent/ca.pem"}}.NewSarama("")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	if got := (kafkasecurity.Config{}).Explain(nil); got != nil {
		t.Errorf("Explain(nil) = %v", got)
	}
	wrapped := kafkasecurity.Config{}.Explain(sarama.ErrOutOfBrokers)
	if !errors.Is(wrapped, sarama.ErrOutOfBrokers) {
		t.Errorf("Explain does not wrap: %v", wrapped)
	}
}
