package cmd_test

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestVersion pins `<binary> version`: the module, a revision line and the
// Go version, without reading the configuration.
func TestVersion(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			r := run(t, b, []string{"KAFKA_BROKERS="}, "version") // an invalid config must not matter
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			for _, want := range []string{b.name, "github.com/firstunicorn/messagekit-go", "revision: ", runtime.Version()} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("version output lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
}

// TestConfigCommand pins `<binary> config`: every variable with its value
// and source, secrets as ***, values from <NAME>_FILE marked as such.
func TestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "database-url")
	if err := os.WriteFile(dbFile, []byte("postgres://app:db-secret-7f3a@db.internal:5432/app?sslmode=verify-full\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			env := []string{"DATABASE_URL_FILE=" + dbFile, "AMQP_URL=amqp://app:mq-secret-9c1e@mq.internal:5672/",
				"KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "KAFKA_SASL_USERNAME=svc", "KAFKA_SASL_PASSWORD=sasl-secret-2b8d",
				"ADMIN_TOKEN=admin-secret-5d6e-long-enough"}
			r := run(t, b, env, "config")
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			for _, secret := range []string{"db-secret-7f3a", "mq-secret-9c1e", "sasl-secret-2b8d", "admin-secret-5d6e"} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("config prints a secret %q:\n%s", secret, r.stdout)
				}
			}
			lines := map[string]string{}
			for _, l := range strings.Split(r.stdout, "\n") {
				if f := strings.Fields(l); len(f) >= 3 {
					lines[f[0]] = l
				}
			}
			for _, v := range b.vars {
				if lines[v] == "" {
					t.Errorf("config does not list %s:\n%s", v, r.stdout)
				}
			}
			for name, want := range map[string][]string{
				"DATABASE_URL":        {"postgres://app:***@db.internal:5432/app?sslmode=verify-full", "file (DATABASE_URL_FILE)"},
				"AMQP_URL":            {"amqp://app:***@mq.internal:5672/", "env"},
				"KAFKA_SASL_PASSWORD": {"***", "env"},
				"LOG_LEVEL":           {"info", "default"},
			} {
				for _, w := range want {
					if !strings.Contains(lines[name], w) {
						t.Errorf("%s line %q lacks %q", name, lines[name], w)
					}
				}
			}
		})
	}
}

// TestSecretsNeverPrinted starts each binary with recognisable secrets in
// every secret variable while every dependency refuses it (PostgreSQL,
// RabbitMQ, Kafka: closed ports), probes /readyz and an API error, and
// greps everything the process printed, the help and the config dump.
func TestSecretsNeverPrinted(t *testing.T) {
	secrets := []string{"pgpass-a1b2c3", "mqpass-d4e5f6", "saslpass-g7h8i9", "tokenvalue-j0k1l2m3n4"}
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			env := []string{
				"HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=debug",
				"DATABASE_URL=postgres://app:" + secrets[0] + "@" + closedPort(t) + "/app?connect_timeout=1",
				"AMQP_URL=amqp://app:" + secrets[1] + "@" + closedPort(t) + "/",
				"KAFKA_BROKERS=" + closedPort(t), "KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "KAFKA_SASL_USERNAME=svc",
				"KAFKA_SASL_PASSWORD=" + secrets[2], "ADMIN_TOKEN=" + secrets[3],
			}
			var out strings.Builder
			for _, args := range [][]string{{"--help"}, {"config"}, {"version"}} {
				r := run(t, b, env, args...)
				out.WriteString(r.stdout + r.stderr)
			}
			p := start(t, b, env)
			base := "http://" + p.addr(t)
			deadline := time.Now().Add(4 * time.Second)
			for time.Now().Before(deadline) {
				code, body := get(t, base+"/readyz")
				if code != http.StatusServiceUnavailable {
					t.Errorf("/readyz = %d with every dependency down", code)
				}
				out.WriteString(body)
				time.Sleep(500 * time.Millisecond)
			}
			for _, path := range []string{"/api/v1/dead-letters", "/api/v1/dead-letters/1/replay", "/health", "/health/outbox"} {
				_, body := get(t, base+path)
				out.WriteString(body)
			}
			if code := p.stop(t, 30*time.Second); code != 0 {
				t.Errorf("exit %d after SIGTERM", code)
			}
			out.WriteString(p.stderr.String())
			all := out.String()
			for _, s := range secrets {
				if strings.Contains(all, s) {
					t.Errorf("output contains the secret %q:\n%s", s, all)
				}
			}
			if !strings.Contains(all, "dependency not ready") {
				t.Errorf("no log line names the failing dependency:\n%s", p.stderr.String())
			}
			if strings.Contains(all, "goroutine ") {
				t.Errorf("a stack trace was printed:\n%s", all)
			}
		})
	}
}
