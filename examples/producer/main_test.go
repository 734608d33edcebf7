package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// mainVariable makes the test binary run main instead of the tests, so that
// tests can check exit statuses and signal handling of the real process.
const mainVariable = "SALES_SERVICE_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainVariable) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// service is the sales service running in-process against this test's
// database.
type service struct {
	url  string
	db   *testenv.Database
	stop func() error
}

// startService runs the service on a free port until the test ends, with
// the Relay off unless edit turns it on, and waits until it is ready.
func startService(t *testing.T, db *testenv.Database, edit func(*Config)) *service {
	t.Helper()
	cfg := Config{DatabaseURL: db.URL, HTTPAddr: "127.0.0.1:0", OutboxTopic: "events", LogLevel: slog.LevelDebug}
	if edit != nil {
		edit(&cfg)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: cfg.LogLevel}))
	s := &service{url: "http://" + ln.Addr().String(), db: db}
	s.stop = testenv.Run(t, func(ctx context.Context) error { return run(ctx, cfg, log, ln) })
	testenv.WaitFor(t, 30*time.Second, "GET /readyz to answer 200", func() bool {
		status, _ := s.get(t, "/readyz")
		return status == http.StatusOK
	})
	return s
}

var client = &http.Client{Timeout: 10 * time.Second}

// post sends body (JSON) with headers given as key, value pairs and returns
// the status and the response body.
func (s *service) post(t *testing.T, path, body string, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, req)
}

func (s *service) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// do returns 0 when the request fails, e.g. before the server listens.
func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Logf("%s %s: %v", req.Method, req.URL.Path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// decodeBody decodes a JSON response body into v.
func decodeBody(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
}

// /healthz answers while the process runs, /readyz while the database
// answers, and run returns nil on a graceful stop.
func TestProbesAndGracefulStop(t *testing.T) {
	t.Parallel()
	s := startService(t, testenv.MigratedPostgres(t), nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := s.get(t, path); status != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("run returned %v after a graceful stop, want nil", err)
	}
	if status, _ := s.get(t, "/healthz"); status != 0 {
		t.Fatalf("GET /healthz answered %d after shutdown", status)
	}
}

type fakeDB struct{ err error }

func (f fakeDB) Ping(context.Context) error { return f.err }

// /readyz says 503 and why when the database does not answer.
func TestReadyzReportsDatabaseDown(t *testing.T) {
	for _, tc := range []struct {
		err        error
		wantStatus int
		wantBody   string
	}{
		{nil, http.StatusOK, `"status":"ok"`},
		{errors.New("connection refused"), http.StatusServiceUnavailable, `"reason":"database: connection refused"`},
	} {
		rec := httptest.NewRecorder()
		readyz(fakeDB{tc.err}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.wantBody) {
			t.Errorf("ping error %v: %d %s, want %d with %s", tc.err, rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
		}
	}
}

// Without the messagekit migrations the service refuses to start, and says
// what to do.
func TestStartFailsWithoutOutboxTable(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, Config{DatabaseURL: db.URL, OutboxTopic: "events"}, slog.New(slog.DiscardHandler), ln)
	if err == nil || !strings.Contains(err.Error(), "outbox_events") || !strings.Contains(err.Error(), "migrations") {
		t.Fatalf("run = %v, want an error telling to apply the migrations for outbox_events", err)
	}
}

// The process exits with 2 and names the variable on invalid configuration.
func TestProcessInvalidConfigExits2(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"LOG_LEVEL=loud", "RELAY_ENABLED=maybe", "HTTP_ADDR=nonsense"} {
		name, _, _ := strings.Cut(v, "=")
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), mainVariable+"=1", v)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), name) {
			t.Errorf("%s: exit %v, stderr %q; want status 2 naming %s", v, err, stderr.String(), name)
		}
	}
}

// SIGTERM stops the process gracefully with status 0.
func TestProcessSIGTERMExits0(t *testing.T) {
	t.Parallel()
	db := testenv.MigratedPostgres(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainVariable+"=1", "DATABASE_URL="+db.URL, "HTTP_ADDR=127.0.0.1:0",
		"RELAY_ENABLED=false", "LOG_LEVEL=info")
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	addr := regexp.MustCompile(`"msg":"sales-service started".*"http_addr":"([^"]+)"`)
	testenv.WaitFor(t, 30*time.Second, "the process to log that it started", func() bool {
		return addr.MatchString(stderr.String())
	})
	s := &service{url: "http://" + addr.FindStringSubmatch(stderr.String())[1]}
	if status, body := s.post(t, "/orders", `{"customer":"ada"}`); status != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", status, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s of SIGTERM\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"sales-service stopped"`) {
		t.Fatalf("no stop message in the log:\n%s", stderr.String())
	}
}
