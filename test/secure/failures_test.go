package secure

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// set returns env with the variables of kv (NAME=value) replaced or added.
func set(env []string, kv ...string) []string {
	out := append([]string(nil), env...)
	for _, s := range kv {
		name, _, _ := strings.Cut(s, "=")
		replaced := false
		for i, e := range out {
			if strings.HasPrefix(e, name+"=") {
				out[i], replaced = s, true
			}
		}
		if !replaced {
			out = append(out, s)
		}
	}
	return out
}

// without returns env without the named variables.
func without(env []string, names ...string) []string {
	var out []string
next:
	for _, e := range env {
		for _, n := range names {
			if strings.HasPrefix(e, n+"=") {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// TestOperatorFailures pins issue 14's operator-actionable failures: each
// mistake makes /readyz answer 503 with the dependency down, and the log
// names the dependency and what was tried (mechanism, user, TLS on or off,
// the CA or server name) in a line that is not repeated at every probe
// and is no Go stack; reconnection backs off instead of storming.
func TestOperatorFailures(t *testing.T) {
	e := newEnv(t)
	e.migrate(t)
	other := testenv.NewPKI(t, "an untrusted CA")
	bridge, keeper := e.bridgeEnv(), e.keeperEnv()

	tests := []struct {
		name    string
		binary  string
		env     []string
		check   string   // the /readyz check that must be down
		logWant []string // what the log must say
	}{
		{"wrong SASL password", "bridge", set(bridge, "KAFKA_SASL_PASSWORD=not-the-password-42"), "kafka",
			[]string{"SASL SCRAM-SHA-512 as user bridge", "TLS on", "check the SASL user, password and mechanism"}},
		{"untrusted Kafka CA", "bridge", set(bridge, "KAFKA_TLS_CA_FILE="+other.CAFile), "kafka",
			[]string{"certificate signed by unknown authority", "CA file " + other.CAFile}},
		{"Kafka certificate for another host", "bridge", set(bridge, "KAFKA_TLS_SERVER_NAME=kafka.example.com"), "kafka",
			[]string{"not kafka.example.com"}},
		{"plaintext client, TLS listener", "dlq-bookkeeper", without(keeper, "KAFKA_TLS_CA_FILE"), "kafka",
			[]string{"TLS off", "SASL SCRAM-SHA-512 as user bookkeeper"}},
		{"missing ACL", "dlq-bookkeeper", set(keeper, "KAFKA_SASL_USERNAME="+bridgeUser, "KAFKA_SASL_PASSWORD="+bridgePassword), "kafka_consumer",
			[]string{"uthoriz"}},
		{"missing topic ACL for the bridge", "bridge", set(bridge, "KAFKA_TOPICS="+e.names.unreadable), "kafka_consumer",
			[]string{"uthoriz", e.names.unreadable}},
		{"PostgreSQL wrong root", "bridge", set(bridge, "DATABASE_URL="+e.pg.URL(other.CAFile)), "postgres",
			[]string{"certificate signed by unknown authority"}},
		{"PostgreSQL without TLS", "dlq-bookkeeper", set(keeper, "DATABASE_URL="+strings.Replace(e.dbURL, "sslmode=verify-full", "sslmode=disable", 1)), "postgres",
			[]string{"no pg_hba.conf entry", "no encryption"}},
		{"AMQP without a client certificate", "dlq-bookkeeper", without(keeper, "AMQP_TLS_CERT_FILE", "AMQP_TLS_KEY_FILE"), "rabbitmq",
			[]string{"rabbitmq (", "TLS on"}},
		{"untrusted AMQP CA", "bridge", set(bridge, "AMQP_TLS_CA_FILE="+other.CAFile), "rabbitmq",
			[]string{"certificate signed by unknown authority", "TLS on with a client certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := proc(t, tt.binary, tt.env)
			ctx := context.Background()
			var body string
			testenv.WaitFor(t, 60*time.Second, tt.check+" down on /readyz and logged", func() bool {
				var code int
				code, body = p.Ready(ctx)
				log := p.LogTail(1000)
				var r struct {
					Checks map[string]struct{ Status string } `json:"checks"`
				}
				if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &r) != nil || r.Checks[tt.check].Status != "down" {
					return false
				}
				for _, w := range tt.logWant {
					if !strings.Contains(log, w) {
						return false
					}
				}
				return true
			})
			// Probes go on as an orchestrator's would; the log must not
			// grow with them. The bound is on the steady state: the first
			// retries (100 ms, 200 ms, …) come before it, as they would
			// for a blip, so a slow start does not count against it.
			time.Sleep(4 * time.Second)
			before := strings.Count(p.LogTail(100000), "\n")
			for range 10 {
				if code, _ := p.Ready(ctx); code != http.StatusServiceUnavailable {
					t.Fatalf("/readyz = %d, want 503", code)
				}
				time.Sleep(300 * time.Millisecond)
			}
			log := p.LogTail(100000)
			if grown := strings.Count(log, "\n") - before; grown > 8 {
				t.Errorf("%d log lines in 3s of probing and retrying, want a backoff:\n%s", grown, lastLines(log, 20))
			}
			if strings.Contains(log, "goroutine ") || strings.Contains(log, "panic") {
				t.Errorf("the log has a stack trace:\n%s", log)
			}
			for _, secret := range []string{bridgePassword, keeperPassword, "not-the-password-42"} {
				if strings.Contains(log+body, secret) {
					t.Errorf("the log or /readyz shows a password")
				}
			}
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
