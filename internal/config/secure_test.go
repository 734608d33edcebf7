package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/config"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFileVariables pins DESIGN.md §5's <NAME>_FILE: the value comes from
// the file with one trailing newline dropped, for plain URL fields and
// Secrets alike, and is reported with source "file".
func TestFileVariables(t *testing.T) {
	env(t, map[string]string{
		"DATABASE_URL_FILE":        writeFile(t, "postgres://app:db-pass-1@db.internal:5432/app\n"),
		"AMQP_URL_FILE":            writeFile(t, "amqp://app:mq-pass-2@mq.internal:5672/\n"),
		"ADMIN_TOKEN_FILE":         writeFile(t, "token-from-file-3"),
		"KAFKA_SASL_MECHANISM":     "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":      "bridge",
		"KAFKA_SASL_PASSWORD_FILE": writeFile(t, "sasl-pass-4\r\n"),
	})
	var s spec
	if err := config.Load(&s); err != nil {
		t.Fatal(err)
	}
	if s.DatabaseURL != "postgres://app:db-pass-1@db.internal:5432/app" {
		t.Errorf("DATABASE_URL = %q", s.DatabaseURL)
	}
	if s.AMQPURL != "amqp://app:mq-pass-2@mq.internal:5672/" {
		t.Errorf("AMQP_URL = %q", s.AMQPURL)
	}
	if s.Token.Reveal() != "token-from-file-3" || s.KafkaSASLPassword.Reveal() != "sasl-pass-4" {
		t.Errorf("secrets = %q, %q", s.Token.Reveal(), s.KafkaSASLPassword.Reveal())
	}

	settings, err := config.Effective(&s)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]config.Setting{}
	for _, st := range settings {
		got[st.Name] = st
		for _, secret := range []string{"db-pass-1", "mq-pass-2", "token-from-file-3", "sasl-pass-4"} {
			if strings.Contains(st.Value, secret) {
				t.Errorf("%s shows a secret: %q", st.Name, st.Value)
			}
		}
	}
	for name, want := range map[string]config.Setting{
		"DATABASE_URL":        {Value: "postgres://app:***@db.internal:5432/app", Source: config.SourceFile},
		"ADMIN_TOKEN":         {Value: "***", Source: config.SourceFile},
		"KAFKA_SASL_PASSWORD": {Value: "***", Source: config.SourceFile},
		"KAFKA_SASL_USERNAME": {Value: "bridge", Source: config.SourceEnv},
		"HTTP_ADDR":           {Value: ":9090", Source: config.SourceDefault},
	} {
		if g := got[name]; g.Value != want.Value || g.Source != want.Source {
			t.Errorf("%s = %+v, want %+v", name, g, want)
		}
	}
}

// TestSecureLoadErrors pins that each mistake in the secured-connection
// settings stops start-up naming the variable, without the secret.
func TestSecureLoadErrors(t *testing.T) {
	pki := testenv.NewPKI(t, "test CA")
	client := pki.Client("app")
	empty := writeFile(t, "\n")
	garbage := writeFile(t, "not a certificate")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"both forms", map[string]string{"ADMIN_TOKEN": "x", "ADMIN_TOKEN_FILE": writeFile(t, "y")}, "invalid ADMIN_TOKEN_FILE: ADMIN_TOKEN is set too"},
		{"both URL forms", map[string]string{"DATABASE_URL": "postgres://h/db", "DATABASE_URL_FILE": writeFile(t, "postgres://h/db")}, "invalid DATABASE_URL_FILE: DATABASE_URL is set too"},
		{"two newlines", map[string]string{"AMQP_URL_FILE": writeFile(t, "amqp://u:hunter2@h/\n\n")}, "invalid AMQP_URL: not a URL"},
		{"missing file", map[string]string{"AMQP_URL_FILE": "/nonexistent/amqp-url"}, `invalid AMQP_URL_FILE "/nonexistent/amqp-url": no such file`},
		{"empty file", map[string]string{"KAFKA_SASL_PASSWORD_FILE": empty}, "invalid KAFKA_SASL_PASSWORD_FILE"},
		{"unknown mechanism", map[string]string{"KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, `invalid KAFKA_SASL_MECHANISM "scram-sha-512"`},
		{"no user", map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_PASSWORD": "p"}, "invalid KAFKA_SASL_USERNAME"},
		{"no password", map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"}, "invalid KAFKA_SASL_PASSWORD"},
		{"password without mechanism", map[string]string{"KAFKA_SASL_PASSWORD": "p"}, "invalid KAFKA_SASL_MECHANISM"},
		{"kafka CA missing", map[string]string{"KAFKA_TLS_CA_FILE": "/nonexistent/ca.pem"}, "invalid KAFKA_TLS_CA_FILE"},
		{"kafka CA garbage", map[string]string{"KAFKA_TLS_CA_FILE": garbage}, "invalid KAFKA_TLS_CA_FILE"},
		{"kafka cert without key", map[string]string{"KAFKA_TLS_CERT_FILE": client.CertFile}, "invalid KAFKA_TLS_KEY_FILE"},
		{"kafka key is not the cert's", map[string]string{"KAFKA_TLS_CERT_FILE": client.CertFile, "KAFKA_TLS_KEY_FILE": pki.Client("other").KeyFile}, "invalid KAFKA_TLS_CERT_FILE"},
		{"amqp TLS without amqps", map[string]string{"AMQP_TLS_CA_FILE": pki.CAFile}, "invalid AMQP_TLS_CA_FILE: is set but AMQP_URL is not amqps://"},
		{"amqp CA garbage", map[string]string{"AMQP_URL": "amqps://u:p@h:5671/", "AMQP_TLS_CA_FILE": garbage}, "invalid AMQP_TLS_CA_FILE"},
		{"amqp port", map[string]string{"AMQP_URL": "amqp://u:hunter2@h:99999/"}, "invalid AMQP_URL: port 99999"},
		{"broker list with spaces", map[string]string{"KAFKA_BROKERS": "a:9092 b:9092"}, `invalid KAFKA_BROKERS "a:9092 b:9092": broker "a:9092 b:9092" has a space`},
		{"production default", map[string]string{"MESSAGEKIT_ENV": "production", "AMQP_URL": "amqp://mq.internal/", "KAFKA_BROKERS": "k:9092"}, "invalid DATABASE_URL: must be set when MESSAGEKIT_ENV=production"},
		{"production localhost", map[string]string{"MESSAGEKIT_ENV": "production", "DATABASE_URL": "postgres://db.internal/app", "AMQP_URL": "amqp://mq.internal/", "KAFKA_BROKERS": "k:9092,127.0.0.1:9092"}, "invalid KAFKA_BROKERS: points at 127.0.0.1"},
		{"unknown env", map[string]string{"MESSAGEKIT_ENV": "prod"}, `invalid MESSAGEKIT_ENV "prod"`},
		{"dlx too long", map[string]string{"AMQP_DLX": strings.Repeat("x", 256)}, "invalid AMQP_DLX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env(t, tt.env)
			err := config.Load(&spec{})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Load() error = %v, want prefix %q", err, tt.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load() error %#v is no *config.Error", err)
			}
			for _, secret := range []string{"hunter2", "not a certificate"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

// TestSecureLoad pins the working secured settings: amqps with a client
// certificate gives a TLS configuration with the URL's host as server name,
// and production accepts real hosts.
func TestSecureLoad(t *testing.T) {
	pki := testenv.NewPKI(t, "test CA")
	client := pki.Client("app")
	env(t, map[string]string{
		"MESSAGEKIT_ENV": "production", "DATABASE_URL": "postgres://db.internal/app?sslmode=verify-full", "KAFKA_BROKERS": "b-1.msk:9096",
		"AMQP_URL": "amqps://app:pw@mq.internal:5671/", "AMQP_TLS_CA_FILE": pki.CAFile,
		"AMQP_TLS_CERT_FILE": client.CertFile, "AMQP_TLS_KEY_FILE": client.KeyFile,
		"KAFKA_TLS": "true", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "bridge", "KAFKA_SASL_PASSWORD": "pw",
	})
	var s spec
	if err := config.Load(&s); err != nil {
		t.Fatal(err)
	}
	tc := s.AMQPTLS()
	if tc == nil || tc.ServerName != "mq.internal" || len(tc.Certificates) != 1 || tc.RootCAs == nil {
		t.Fatalf("AMQPTLS() = %+v", tc)
	}
	sec := s.KafkaSecurity()
	if !sec.TLSEnabled() || sec.Mechanism != "SCRAM-SHA-512" || sec.Password != "pw" {
		t.Fatalf("KafkaSecurity() = %s", sec.Describe())
	}
}

func TestCheckNames(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{config.CheckTopic("T", "orders.v1_x-y"), true},
		{config.CheckTopic("T", strings.Repeat("a", 249)), true},
		{config.CheckTopic("T", strings.Repeat("a", 250)), false},
		{config.CheckTopic("T", "orders/v1"), false},
		{config.CheckTopic("T", "ordérs"), false},
		{config.CheckTopic("T", ".."), false},
		{config.CheckAMQPName("Q", strings.Repeat("q", 255)), true},
		{config.CheckAMQPName("Q", strings.Repeat("q", 256)), false},
		{config.CheckAMQPName("Q", "a\nb"), false},
	} {
		if (tt.err == nil) != tt.want {
			t.Errorf("got %v, want ok=%v", tt.err, tt.want)
		}
	}
}
