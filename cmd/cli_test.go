// Package cmd_test runs the three binaries as an operator would: built once,
// started as processes, configured through the environment, stopped with
// SIGTERM.
package cmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// binary is one of the three commands under test.
type binary struct {
	pkg  string // directory under cmd/, also the built file's name
	name string // the name it reports itself by
	// vars is every variable of DESIGN.md §5 the binary reads (a contract).
	vars []string
	// invalid holds variable=value settings that must stop start-up, each
	// with the text the error line must contain.
	invalid []invalidCase
	// placeholder marks a binary whose work loop has not landed: its help
	// must say so, and a real one's must not.
	placeholder bool
}

type invalidCase struct {
	env  string // NAME=value
	want string
}

var common = []string{"DATABASE_URL", "HTTP_ADDR", "MIGRATE_ON_START", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "KAFKA_BROKERS", "AMQP_URL",
	"MESSAGEKIT_ENV", "KAFKA_TLS", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "KAFKA_TLS_SERVER_NAME",
	"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
	"AMQP_TLS_CA_FILE", "AMQP_TLS_CERT_FILE", "AMQP_TLS_KEY_FILE", "AMQP_TLS_SERVER_NAME"}

// shared are the invalid settings every binary must reject.
var shared = []invalidCase{
	{"KAFKA_BROKERS=", "KAFKA_BROKERS must not be empty"},
	{"HTTP_ADDR=nonsense", `invalid HTTP_ADDR "nonsense"`},
	{"SHUTDOWN_TIMEOUT=soon", `invalid SHUTDOWN_TIMEOUT "soon"`},
	{"LOG_LEVEL=loud", `invalid LOG_LEVEL "loud"`},
	{"AMQP_URL=amqp://h:99999/", "invalid AMQP_URL: port 99999"},
	{"KAFKA_BROKERS=a:9092 b:9092", `invalid KAFKA_BROKERS "a:9092 b:9092"`},
	{"OTEL_TRACES_EXPORTER=jaeger", `invalid OTEL_TRACES_EXPORTER "jaeger": want otlp, console or none`},
	{"KAFKA_SASL_MECHANISM=GSSAPI", `invalid KAFKA_SASL_MECHANISM "GSSAPI"`},
	{"KAFKA_TLS_CA_FILE=/nonexistent/ca.pem", "invalid KAFKA_TLS_CA_FILE"},
	{"DATABASE_URL_FILE=/nonexistent/db-url", `invalid DATABASE_URL_FILE "/nonexistent/db-url"`},
	{"MESSAGEKIT_ENV=production", "invalid DATABASE_URL: must be set when MESSAGEKIT_ENV=production"},
}

var binaries = []binary{
	{
		pkg:         "bridge",
		name:        "messagekit-bridge",
		placeholder: false,
		vars: append([]string{"KAFKA_TOPICS", "KAFKA_GROUP_ID", "KAFKA_DLQ_TOPIC", "AMQP_EXCHANGE", "AMQP_DLX", "AMQP_DECLARE",
			"BRIDGE_BATCH_SIZE", "BRIDGE_BATCH_WAIT", "BRIDGE_FETCH_MIN_BYTES", "BRIDGE_FETCH_MAX_WAIT", "BRIDGE_MAX_RECORD_BYTES", "BRIDGE_UNROUTABLE", "BRIDGE_MAX_RATE",
			"BRIDGE_ROUTING_KEY", "AMQP_CONNECTION_NAME", "BRIDGE_BREAKER_TIMEOUT"}, common...),
		invalid: append([]invalidCase{
			{"BRIDGE_UNROUTABLE=bounce", `invalid BRIDGE_UNROUTABLE "bounce": want drop or dlq`},
			{"BRIDGE_BATCH_SIZE=0", `invalid BRIDGE_BATCH_SIZE "0": must be at least 1`},
			{"BRIDGE_MAX_RECORD_BYTES=0", `invalid BRIDGE_MAX_RECORD_BYTES "0"`},
			{"BRIDGE_MAX_RATE=-1", `invalid BRIDGE_MAX_RATE "-1"`},
			{"BRIDGE_FETCH_MIN_BYTES=0", `invalid BRIDGE_FETCH_MIN_BYTES "0": must be at least 1`},
			{"BRIDGE_FETCH_MAX_WAIT=500us", `invalid BRIDGE_FETCH_MAX_WAIT "500µs": must be at least 1ms`},
			{"KAFKA_TOPICS=", "KAFKA_TOPICS must not be empty"},
			{"BRIDGE_BATCH_SIZE=1000000000", `invalid BRIDGE_BATCH_SIZE "1000000000": must be at most 10000`},
			{"KAFKA_TOPICS=orders/v1", `invalid KAFKA_TOPICS "orders/v1"`},
			{"KAFKA_DLQ_TOPIC=" + strings.Repeat("t", 250), "invalid KAFKA_DLQ_TOPIC"},
			{"BRIDGE_ROUTING_KEY={eventType", `invalid BRIDGE_ROUTING_KEY "{eventType"`},
			{"BRIDGE_ROUTING_KEY={x}", "unknown placeholder {x}"},
			{"AMQP_EXCHANGE=" + strings.Repeat("e", 256), "invalid AMQP_EXCHANGE"},
		}, shared...),
	},
	{
		pkg:  "dlq-bookkeeper",
		name: "messagekit-dlq-bookkeeper",
		vars: append([]string{"KAFKA_GROUP_ID", "AMQP_DLX", "AMQP_DECLARE", "DLQ_KAFKA_TOPICS", "DLQ_QUEUES", "DLQ_BINDINGS", "DLQ_KAFKA_EVENT_TYPES", "DLQ_QUEUE_TYPE"},
			common...),
		invalid: append([]invalidCase{
			{"AMQP_DECLARE=maybe", `invalid AMQP_DECLARE "maybe": want true or false`},
			{"DLQ_QUEUE_TYPE=stream", `invalid DLQ_QUEUE_TYPE "stream": must be classic or quorum`},
			{"DLQ_QUEUES=a,,b", `invalid DLQ_QUEUES "a,,b"`},
			{"DLQ_KAFKA_TOPICS=ok,not ok", `invalid DLQ_KAFKA_TOPICS "not ok"`},
			{"DLQ_BINDINGS=" + strings.Repeat("b", 256), "invalid DLQ_BINDINGS"},
		}, shared...),
	},
	{
		pkg:         "admin-api",
		name:        "messagekit-admin-api",
		placeholder: false,
		vars: append([]string{"AMQP_EXCHANGE", "AMQP_DLX", "OUTBOX_TOPIC", "ADMIN_TOKEN", "ADMIN_TOKENS", "ADMIN_READ_OPEN",
			"ADMIN_REPLAY_DESTINATIONS", "ADMIN_REPLAY_CLAIM_TIMEOUT", "OUTBOX_HEALTH_PENDING", "OUTBOX_HEALTH_STALE_AFTER",
			"OUTBOX_HEALTH_SLOT_LAG_BYTES"}, common...),
		invalid: append([]invalidCase{
			{"ADMIN_READ_OPEN=maybe", `invalid ADMIN_READ_OPEN "maybe": want true or false`},
			{"ADMIN_TOKENS=ops=short-secret", "invalid ADMIN_TOKENS: principal ops: token shorter than 16 bytes"},
			{"ADMIN_TOKENS=ops=sha256:abc", "invalid ADMIN_TOKENS: principal ops: want sha256: followed by 64 hex digits"},
			{"ADMIN_TOKENS=no-equals-sign-here", "invalid ADMIN_TOKENS: entry 1: want name=token"},
			{"ADMIN_REPLAY_DESTINATIONS=orders.[", `invalid ADMIN_REPLAY_DESTINATIONS "orders.["`},
			{"OUTBOX_HEALTH_PENDING=0", `invalid OUTBOX_HEALTH_PENDING "0": must be at least 1`},
			{"OUTBOX_HEALTH_STALE_AFTER=soon", `invalid OUTBOX_HEALTH_STALE_AFTER "soon"`},
			{"AMQP_URL=http://broker/", "invalid AMQP_URL"},
			{"OUTBOX_TOPIC=a b", `invalid OUTBOX_TOPIC "a b"`},
			{"ADMIN_TOKEN_FILE=/nonexistent/token", "invalid ADMIN_TOKEN_FILE: ADMIN_TOKEN is set too"},
		}, shared...),
	},
}

// binDir holds the binaries TestMain built.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "messagekit-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "./"+b.pkg)
	}
	build := exec.Command(goTool(), args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

func (b binary) path() string { return filepath.Join(binDir, b.pkg) }

// result is a finished process.
type result struct {
	code           int
	stdout, stderr string
}

// run runs b to completion with args and exactly env (no inherited
// variables, so the developer's DATABASE_URL or OTEL_* cannot leak in).
func run(t *testing.T, b binary, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.path(), args...)
	cmd.Env = append([]string{}, env...) // never nil: nil would inherit ours
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s %v: %v", b.name, args, err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// TestHelp pins that --help succeeds, lists every variable of the binary and
// says plainly whether the work loop is there yet.
func TestHelp(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			for _, arg := range []string{"--help", "-h", "help"} {
				r := run(t, b, nil, arg)
				if r.code != 0 {
					t.Fatalf("%s %s: exit %d, stderr %q", b.name, arg, r.code, r.stderr)
				}
				for _, want := range append([]string{b.name, "migrate"}, b.vars...) {
					if !strings.Contains(r.stdout, want) {
						t.Errorf("%s %s does not mention %q:\n%s", b.name, arg, want, r.stdout)
					}
				}
				if said := strings.Contains(r.stdout, "not implemented yet"); said != b.placeholder {
					t.Errorf("%s %s: says \"not implemented yet\" = %v, want %v", b.name, arg, said, b.placeholder)
				}
			}
		})
	}
}

func TestUnknownArgument(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			r := run(t, b, nil, "frobnicate")
			if r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and a usage error", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestInvalidConfig pins that each bad value exits 2 with one line on stderr
// that names the variable, before anything starts (nothing is listening on
// HTTP_ADDR, no log line).
func TestInvalidConfig(t *testing.T) {
	for _, b := range binaries {
		for _, c := range b.invalid {
			t.Run(b.pkg+"/"+c.env, func(t *testing.T) {
				t.Parallel()
				r := run(t, b, []string{c.env, "ADMIN_TOKEN=hunter2-hunter2-hunter2"})
				want := b.name + ": " + c.want
				if r.code != 2 || !strings.HasPrefix(r.stderr, b.name+": ") || !strings.Contains(r.stderr, c.want) ||
					strings.Count(r.stderr, "\n") != 1 {
					t.Fatalf("exit %d, stderr %q; want 2 and one line like %q", r.code, r.stderr, want)
				}
				if strings.Contains(r.stderr, "hunter2-hunter2-hunter2") {
					t.Fatalf("stderr leaks ADMIN_TOKEN: %q", r.stderr)
				}
			})
		}
	}
}

// process is a started binary.
type process struct {
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer
	done   chan struct{} // closed when the process has exited
}

func start(t *testing.T, b binary, env []string) *process {
	t.Helper()
	cmd := exec.Command(b.path())
	cmd.Env = append([]string{}, env...) // never nil: nil would inherit ours
	p := &process{cmd: cmd, stderr: &testenv.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
			t.Logf("%s was still running; logs:\n%s", b.name, p.stderr.String())
		}
	})
	return p
}

// logLine returns the first JSON log line whose msg is msg, or nil.
func (p *process) logLine(t *testing.T, msg string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

// addr waits for the "starting" log line and returns the address it names.
func (p *process) addr(t *testing.T) string {
	t.Helper()
	var addr string
	testenv.WaitFor(t, 30*time.Second, "start line", func() bool {
		select {
		case <-p.done:
			t.Fatalf("exited during start-up; logs:\n%s", p.stderr.String())
		default:
		}
		if rec := p.logLine(t, "starting"); rec != nil {
			addr, _ = rec["http_addr"].(string)
			return true
		}
		return false
	})
	return addr
}

// stop sends SIGTERM and returns the exit code, failing unless the process
// exits within limit.
func (p *process) stop(t *testing.T, limit time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("still running %v after SIGTERM; logs:\n%s", limit, p.stderr.String())
		return -1
	}
}

type readiness struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"checks"`
}

func getReadyz(t *testing.T, base string) (int, readiness) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// closedPort returns a local address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServe starts each binary against this test's PostgreSQL database,
// RabbitMQ and an in-process Kafka: the endpoints answer, /readyz reports
// every dependency up, SIGTERM stops the process cleanly and promptly, and
// ADMIN_TOKEN never reaches the logs. With DATABASE_URL on a closed port,
// /readyz is 503 and names postgres.
func TestServe(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			db := testenv.Postgres(t)
			broker := testenv.RabbitMQ(t)
			kafka := testenv.Kafka(t)
			env := []string{
				"HTTP_ADDR=127.0.0.1:0",
				"DATABASE_URL=" + db.URL,
				"AMQP_URL=" + broker.URL,
				// This test's own topology, so binaries that declare and
				// consume it leave the shared broker's defaults alone.
				"AMQP_EXCHANGE=" + broker.Name("events"),
				"AMQP_DLX=" + broker.Name("events.dlx"),
				"DLQ_QUEUES=" + broker.Name("events.dlq"),
				"KAFKA_BROKERS=" + strings.Join(kafka, ","),
				"ADMIN_TOKEN=hunter2-hunter2-hunter2",
				"LOG_LEVEL=debug",
			}

			t.Run("up", func(t *testing.T) {
				p := start(t, b, env)
				base := "http://" + p.addr(t)
				var r readiness
				testenv.WaitFor(t, 20*time.Second, "ready /readyz", func() bool {
					var code int
					code, r = getReadyz(t, base)
					return code == http.StatusOK
				})
				for _, dep := range []string{"postgres", "rabbitmq", "kafka"} {
					if r.Checks[dep].Status != "up" {
						t.Errorf("/readyz %s = %+v, want up", dep, r.Checks[dep])
					}
				}
				if code, body := get(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
					t.Errorf("/healthz = %d %s", code, body)
				}
				if code, body := get(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") ||
					!strings.Contains(body, `messagekit_health_check_up{check="postgres"} 1`) {
					t.Errorf("/metrics = %d, lacks go_goroutines or the check gauge", code)
				}

				if code := p.stop(t, 10*time.Second); code != 0 {
					t.Fatalf("exit %d after SIGTERM; logs:\n%s", code, p.stderr.String())
				}
				if p.logLine(t, "shut down cleanly") == nil {
					t.Errorf("logs do not say it shut down:\n%s", p.stderr.String())
				}
				if strings.Contains(p.stderr.String(), "hunter2-hunter2-hunter2") {
					t.Errorf("logs leak ADMIN_TOKEN")
				}
			})

			t.Run("postgres down", func(t *testing.T) {
				down := append(env[:len(env):len(env)], "DATABASE_URL=postgres://root@"+closedPort(t)+"/none")
				p := start(t, b, down)
				base := "http://" + p.addr(t)
				var (
					code int
					r    readiness
				)
				testenv.WaitFor(t, 20*time.Second, "/readyz past starting", func() bool {
					code, r = getReadyz(t, base)
					return r.Status != "starting"
				})
				pg := r.Checks["postgres"]
				if code != http.StatusServiceUnavailable || pg.Status != "down" || pg.Error != "" {
					t.Fatalf("/readyz = %d %+v; want 503 with postgres down, without the error text", code, r)
				}
				testenv.WaitFor(t, 10*time.Second, "the cause in the log", func() bool {
					return strings.Contains(p.stderr.String(), "dependency not ready") && strings.Contains(p.stderr.String(), "refused")
				})
				if code := p.stop(t, 10*time.Second); code != 0 {
					t.Fatalf("exit %d after SIGTERM; logs:\n%s", code, p.stderr.String())
				}
			})
		})
	}
}

// TestPortTaken pins that a listen error exits 1 and says why.
func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := binaries[0]
	r := run(t, b, []string{"HTTP_ADDR=" + l.Addr().String()})
	if r.code != 1 || !strings.Contains(r.stderr, `"msg":"listen failed"`) {
		t.Fatalf("exit %d, stderr %s; want 1 and a listen error", r.code, r.stderr)
	}
}

// TestMigrate pins the migrate command's exit codes: 0, and 0 again when
// there is nothing left to apply; 1 when the database is unreachable. The
// schema itself is tested in internal/migrate.
func TestMigrate(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.pkg, func(t *testing.T) {
			t.Parallel()
			db := testenv.Postgres(t)
			for i := range 2 {
				r := run(t, b, []string{"DATABASE_URL=" + db.URL}, "migrate")
				if r.code != 0 {
					t.Fatalf("migrate run %d: exit %d; logs:\n%s", i+1, r.code, r.stderr)
				}
			}
			r := run(t, b, []string{"DATABASE_URL=postgres://root@" + closedPort(t) + "/none?connect_timeout=5"}, "migrate")
			if r.code != 1 || !strings.Contains(r.stderr, "migrate failed") {
				t.Fatalf("migrate against a closed port: exit %d; logs:\n%s", r.code, r.stderr)
			}
		})
	}
}
