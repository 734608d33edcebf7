package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/config"
	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/migrate"
	"github.com/firstunicorn/messagekit-go/internal/service"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

type testConfig struct {
	config.Common
	HTTPAddr config.ListenAddr `envconfig:"HTTP_ADDR" default:"127.0.0.1:0" desc:"ops listen address"`
	Widgets  int               `envconfig:"TEST_WIDGETS" default:"3" desc:"how many widgets"`
}

// newSpec returns a spec whose config is fresh and whose Run is run.
func newSpec(run func(ctx context.Context, rt *service.Runtime) error) service.Spec {
	var cfg testConfig
	return service.Spec{
		Name:        "messagekit-test",
		Summary:     "exercises the service lifecycle",
		Description: "This build only serves health and metrics.",
		Config:      &cfg,
		Common:      &cfg.Common,
		HTTPAddr:    &cfg.HTTPAddr,
		Run:         run,
	}
}

// setEnv makes exactly vars visible among the test config's variables and
// the OTEL_* switches.
func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	all, err := config.Vars(&testConfig{})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}
	for _, v := range all {
		names = append(names, v.Name)
	}
	for _, n := range names {
		t.Setenv(n, "")
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// logLine returns the first JSON log line with msg, or nil.
func logLine(t *testing.T, logs string, msg string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		if rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

type result struct {
	code           int
	stdout, stderr string
}

func execute(ctx context.Context, spec service.Spec, args ...string) result {
	var stdout, stderr testenv.SyncBuffer
	code := service.Execute(ctx, spec, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func mustNotRun(t *testing.T) func(context.Context, *service.Runtime) error {
	return func(context.Context, *service.Runtime) error {
		t.Error("Run was called")
		return nil
	}
}

func TestHelp(t *testing.T) {
	// Help must work even when the configuration is broken.
	setEnv(t, map[string]string{"HTTP_ADDR": "nonsense"})
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			r := execute(context.Background(), newSpec(mustNotRun(t)), arg)
			if r.code != service.ExitOK || r.stderr != "" {
				t.Fatalf("code %d, stderr %q", r.code, r.stderr)
			}
			for _, want := range []string{
				"messagekit-test - exercises the service lifecycle",
				"This build only serves health and metrics.",
				"messagekit-test migrate status",
				"DATABASE_URL", "postgres://localhost:5432/messagekit", "HTTP_ADDR", "127.0.0.1:0",
				"MIGRATE_ON_START", "SHUTDOWN_TIMEOUT", "30s", "LOG_LEVEL", "TEST_WIDGETS", "how many widgets",
				"OTEL_*", "/readyz", "Exit status",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("help lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	setEnv(t, nil)
	for _, args := range [][]string{{"serve"}, {"--verbose"}, {"migrate", "down"}, {"help", "me"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := execute(context.Background(), newSpec(mustNotRun(t)), args...)
			if r.code != service.ExitUsage || r.stdout != "" {
				t.Fatalf("code %d, stdout %q; want %d", r.code, r.stdout, service.ExitUsage)
			}
			if !strings.HasPrefix(r.stderr, "messagekit-test: unknown") || !strings.Contains(r.stderr, "messagekit-test --help") {
				t.Fatalf("stderr = %q", r.stderr)
			}
		})
	}
}

// TestConfigError pins that a bad value stops start-up with one line naming
// the variable, before anything runs.
func TestConfigError(t *testing.T) {
	for _, tt := range []struct{ env, value, want string }{
		{"HTTP_ADDR", "nonsense", `messagekit-test: invalid HTTP_ADDR "nonsense": want host:port`},
		{"LOG_LEVEL", "loud", `messagekit-test: invalid LOG_LEVEL "loud"`},
		{"TEST_WIDGETS", "", "messagekit-test: TEST_WIDGETS must not be empty"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			setEnv(t, map[string]string{tt.env: tt.value})
			for _, args := range [][]string{nil, {"migrate"}} {
				r := execute(context.Background(), newSpec(mustNotRun(t)), args...)
				if r.code != service.ExitUsage || !strings.HasPrefix(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
					t.Fatalf("%v: code %d stderr %q; want %d and one line starting %q", args, r.code, r.stderr, service.ExitUsage, tt.want)
				}
			}
		})
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLifecycle walks one run from start to a clean shutdown: readiness is
// "starting" until Run says it is ready, the endpoints answer, cancelling
// ctx cancels Run's context while the server still answers (/readyz says
// "stopping"), then cleanups run newest first and the exit code is 0.
func TestLifecycle(t *testing.T) {
	setEnv(t, nil)
	addrc := make(chan string, 1)
	goReady, draining, drained := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var order []string
	spec := newSpec(func(ctx context.Context, rt *service.Runtime) error {
		rt.AddCheck("dep", health.CheckFunc(func(context.Context) error { return nil }))
		rt.Handle("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "extra") }))
		rt.OnShutdown("first", func(context.Context) error { order = append(order, "first"); return nil })
		rt.OnShutdown("second", func(context.Context) error { order = append(order, "second"); return nil })
		if rt.Logger() == nil || rt.Registry() == nil || rt.TracerProvider() == nil || rt.Propagator() == nil {
			t.Error("runtime lacks a logger, registry or tracer provider")
		}
		addrc <- rt.Addr().String()
		<-goReady
		rt.SetReady()
		<-ctx.Done()
		close(draining)
		<-drained
		return ctx.Err() // cancellation is a clean end
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- execute(ctx, spec) }()

	var base string
	select {
	case addr := <-addrc:
		base = "http://" + addr
	case r := <-done:
		t.Fatalf("Execute returned %d early: %s", r.code, r.stderr)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"starting"`) {
		t.Fatalf("/readyz before SetReady = %d %s", code, body)
	}
	close(goReady)
	waitFor(t, "/readyz 200", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == http.StatusOK })
	if _, body := httpGet(t, base+"/readyz"); !strings.Contains(body, `"dep":{"status":"up"`) {
		t.Fatalf("/readyz = %s", body)
	}
	for path, want := range map[string]string{
		"/healthz": `{"status":"ok"}`,
		"/metrics": "go_goroutines",
		"/extra":   "extra",
	} {
		if code, body := httpGet(t, base+path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d %q, want 200 with %q", path, code, body, want)
		}
	}
	if _, body := httpGet(t, base+"/metrics"); !strings.Contains(body, "process_") {
		t.Errorf("/metrics lacks the process collector")
	}

	cancel()
	<-draining
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"stopping"`) {
		t.Errorf("/readyz while draining = %d %s", code, body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining = %d", code)
	}
	close(drained)
	r := <-done
	if r.code != service.ExitOK {
		t.Fatalf("exit code %d, logs:\n%s", r.code, r.stderr)
	}
	if strings.Join(order, ",") != "second,first" {
		t.Errorf("cleanups ran as %v, want newest first", order)
	}
	start := logLine(t, r.stderr, "starting")
	if start == nil || "http://"+fmt.Sprint(start["http_addr"]) != base || start["service"] != "messagekit-test" {
		t.Errorf("start line = %v, want http_addr %s", start, base)
	}
	if logLine(t, r.stderr, "shutting down") == nil || logLine(t, r.stderr, "shut down cleanly") == nil {
		t.Errorf("logs lack the shutdown lines:\n%s", r.stderr)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Errorf("server still answers after Execute returned")
	}
}

// TestShutdownOutcomes pins the exit code for each way a run can end.
func TestShutdownOutcomes(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	tests := []struct {
		name     string
		env      map[string]string
		run      func(ctx context.Context, rt *service.Runtime) error
		cancel   bool
		wantCode int
		wantLog  string
	}{
		{
			name:     "run fails",
			run:      func(context.Context, *service.Runtime) error { return errors.New("boom") },
			wantCode: service.ExitFailure,
			wantLog:  "work loop failed; shutting down",
		},
		{
			name:     "run panics",
			run:      func(context.Context, *service.Runtime) error { panic("nil map") },
			wantCode: service.ExitFailure, // not Go's 2, which means a usage error
			wantLog:  "work loop failed; shutting down",
		},
		{
			name:     "run finishes",
			run:      func(context.Context, *service.Runtime) error { return nil },
			wantCode: service.ExitOK,
			wantLog:  "shut down cleanly",
		},
		{
			name:     "run fails while stopping",
			run:      func(ctx context.Context, _ *service.Runtime) error { <-ctx.Done(); return errors.New("lost offsets") },
			cancel:   true,
			wantCode: service.ExitFailure,
			wantLog:  "work loop failed",
		},
		{
			name:     "run ignores cancellation",
			env:      map[string]string{"SHUTDOWN_TIMEOUT": "100ms"},
			run:      func(context.Context, *service.Runtime) error { <-block; return nil },
			cancel:   true,
			wantCode: service.ExitFailure,
			wantLog:  "shutdown timed out waiting for the work loop",
		},
		{
			name: "cleanup fails",
			run: func(ctx context.Context, rt *service.Runtime) error {
				rt.OnShutdown("pool", func(context.Context) error { return errors.New("still busy") })
				<-ctx.Done()
				return nil
			},
			cancel:   true,
			wantCode: service.ExitFailure,
			wantLog:  "cleanup failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			started := make(chan struct{})
			spec := newSpec(func(ctx context.Context, rt *service.Runtime) error {
				close(started)
				return tt.run(ctx, rt)
			})
			done := make(chan result, 1)
			go func() { done <- execute(ctx, spec) }()
			<-started
			if tt.cancel {
				cancel()
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Execute did not return")
			}
			if r.code != tt.wantCode || logLine(t, r.stderr, tt.wantLog) == nil {
				t.Fatalf("code %d, want %d with log %q; logs:\n%s", r.code, tt.wantCode, tt.wantLog, r.stderr)
			}
		})
	}
}

func TestIncompleteSpec(t *testing.T) {
	spec := newSpec(nil)
	r := execute(context.Background(), spec)
	if r.code != service.ExitFailure || !strings.Contains(r.stderr, "needs Name, Config, Common, HTTPAddr and Run") {
		t.Fatalf("code %d, stderr %q", r.code, r.stderr)
	}
}

func TestListenError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	setEnv(t, map[string]string{"HTTP_ADDR": l.Addr().String()})
	r := execute(context.Background(), newSpec(mustNotRun(t)))
	if r.code != service.ExitFailure || logLine(t, r.stderr, "listen failed") == nil {
		t.Fatalf("code %d, logs:\n%s", r.code, r.stderr)
	}
}

func closedPostgresURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "postgres://root@" + addr + "/none?connect_timeout=2"
}

// TestMigrate pins the migrate commands' exit codes; the schema itself is
// tested in internal/migrate.
func TestMigrate(t *testing.T) {
	db := testenv.Postgres(t)
	setEnv(t, map[string]string{"DATABASE_URL": db.URL})
	for i := range 2 { // the second run has nothing to apply
		if r := execute(context.Background(), newSpec(mustNotRun(t)), "migrate"); r.code != service.ExitOK {
			t.Fatalf("migrate run %d: code %d, logs:\n%s", i+1, r.code, r.stderr)
		}
	}
	r := execute(context.Background(), newSpec(mustNotRun(t)), "migrate", "status")
	if r.code != service.ExitOK || !strings.Contains(r.stdout, "applied") {
		t.Fatalf("migrate status: code %d, stdout %q, logs:\n%s", r.code, r.stdout, r.stderr)
	}

	setEnv(t, map[string]string{"DATABASE_URL": closedPostgresURL(t)})
	r = execute(context.Background(), newSpec(mustNotRun(t)), "migrate")
	if r.code != service.ExitFailure || logLine(t, r.stderr, "migrate failed") == nil {
		t.Fatalf("migrate against a closed port: code %d, logs:\n%s", r.code, r.stderr)
	}
}

// TestMigrateOnStart pins that MIGRATE_ON_START=true migrates before Run
// and that a failing migration stops the start with exit code 1.
func TestMigrateOnStart(t *testing.T) {
	db := testenv.Postgres(t)
	setEnv(t, map[string]string{"DATABASE_URL": db.URL, "MIGRATE_ON_START": "true"})
	var migrated bool
	r := execute(context.Background(), newSpec(func(ctx context.Context, _ *service.Runtime) error {
		return db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", migrate.VersionTable).Scan(&migrated)
	}))
	if r.code != service.ExitOK || !migrated {
		t.Fatalf("code %d, migrated before Run %v; logs:\n%s", r.code, migrated, r.stderr)
	}

	setEnv(t, map[string]string{"DATABASE_URL": closedPostgresURL(t), "MIGRATE_ON_START": "true"})
	r = execute(context.Background(), newSpec(mustNotRun(t)))
	if r.code != service.ExitFailure || logLine(t, r.stderr, "migrate on start failed") == nil {
		t.Fatalf("code %d, logs:\n%s", r.code, r.stderr)
	}
}

// Pins the body read timeout: two clients sending a request body at one
// byte a second hold their handlers no longer than ReadTimeout; the
// handlers see a read error and return.
func TestSlowBodyReleasesHandler(t *testing.T) {
	setEnv(t, map[string]string{})
	const timeout = time.Second
	var released atomic.Int32
	addr := make(chan string, 1)
	spec := newSpec(func(ctx context.Context, rt *service.Runtime) error {
		rt.Handle("POST /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			if err != nil {
				released.Add(1)
				http.Error(w, err.Error(), http.StatusRequestTimeout)
			}
		}))
		addr <- rt.Addr().String()
		<-ctx.Done()
		return nil
	})
	spec.ReadTimeout = timeout
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); execute(ctx, spec) }()
	defer func() { cancel(); <-done }()
	a := <-addr

	start := time.Now()
	for range 2 {
		conn, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			_, _ = fmt.Fprintf(conn, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
			for range 1000 {
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	waitFor(t, "both handlers released", func() bool { return released.Load() == 2 })
	if d := time.Since(start); d > timeout+5*time.Second {
		t.Errorf("handlers released after %v, want about %v", d, timeout)
	}
}

// Pins the pool size: GOMAXPROCS-aware unless the URL says pool_max_conns.
func TestNewPoolSize(t *testing.T) {
	ctx := context.Background()
	// More than the CPUs pgx's default counts, as a CPU limit is fewer.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.NumCPU() + 6))
	for url, want := range map[string]int32{
		"postgres://u@127.0.0.1:1/db":                   int32(max(service.MinPoolConns, runtime.GOMAXPROCS(0))),
		"postgres://u@127.0.0.1:1/db?pool_max_conns=17": 17,
		"host=127.0.0.1 port=1 user=u pool_max_conns=3": 3,
	} {
		pool, err := service.NewPool(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if got := pool.Config().MaxConns; got != want {
			t.Errorf("%s: MaxConns %d, want %d", url, got, want)
		}
		pool.Close()
	}
	if _, err := service.NewPool(ctx, "postgres://u@127.0.0.1:1/db?pool_max_conns=x"); err == nil {
		t.Error("an invalid pool_max_conns was accepted")
	}
}
