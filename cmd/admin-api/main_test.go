package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/service"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for the service's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunServesAPI pins the wiring: the API under /api/v1 (with the
// token), /health and /health/outbox next to the runtime's /healthz and
// /metrics, and the API's metrics on the runtime's registry. Not parallel:
// the configuration comes from the environment.
func TestRunServesAPI(t *testing.T) {
	db := testenv.MigratedPostgres(t)
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("ADMIN_TOKEN", "hunter2-hunter2-hunter2")
	t.Setenv("ADMIN_READ_OPEN", "false")
	t.Setenv("OUTBOX_SLOT_NAME", "")

	var cfg Config
	s := spec(&cfg)
	addrs := make(chan net.Addr, 1)
	inner := s.Run
	s.Run = func(ctx context.Context, rt *service.Runtime) error {
		addrs <- rt.Addr()
		return inner(ctx, rt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	exit := make(chan int, 1)
	go func() { exit <- service.Execute(ctx, s, nil, io.Discard, &logs) }()

	var base string
	select {
	case a := <-addrs:
		base = "http://" + a.String()
	case code := <-exit:
		t.Fatalf("exit %d before serving:\n%s", code, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("not serving after 30 s")
	}

	// Run mounts the API after it starts; poll the route mounted last.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health/outbox")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health/outbox not served after 30 s (%v):\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	tests := []struct {
		path, auth string
		want       int
		body       string
	}{
		{"/api/v1/dead-letters", "Bearer hunter2-hunter2-hunter2", http.StatusOK, `"items":[]`},
		{"/api/v1/dead-letters", "", http.StatusUnauthorized, `"error"`},
		{"/api/v1/dlq", "Bearer hunter2-hunter2-hunter2", http.StatusOK, `"events":[]`},
		{"/api/v1/outbox/stats", "Bearer hunter2-hunter2-hunter2", http.StatusOK, `"pending":0`},
		{"/api/v1/openapi.json", "", http.StatusOK, `"openapi"`},
		{"/api/v1/nope", "Bearer hunter2-hunter2-hunter2", http.StatusNotFound, `"error"`},
		{"/api/v1/replay", "Bearer hunter2-hunter2-hunter2", http.StatusBadRequest, `from_ts: required`},
		{"/api/v1/replay?from_ts=2026-01-01T00:00:00Z&to_ts=2026-01-02T00:00:00Z", "Bearer hunter2-hunter2-hunter2", http.StatusOK, `"events":[]`},
		{"/health", "", http.StatusOK, `"status":"healthy"`},
		{"/health/outbox", "", http.StatusOK, `"status":"healthy"`},
		{"/healthz", "", http.StatusOK, `ok`},
		{"/metrics", "", http.StatusOK, `messagekit_admin_requests_total{method="GET",route="/api/v1/dead-letters",status="200"} 1`},
	}
	for _, tc := range tests {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.body) {
			t.Errorf("GET %s = %d %.300s; want %d with %s", tc.path, resp.StatusCode, body, tc.want, tc.body)
		}
	}

	cancel()
	select {
	case code := <-exit:
		if code != service.ExitOK {
			t.Errorf("exit %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after cancel")
	}
	if strings.Contains(logs.String(), "hunter2-hunter2-hunter2") {
		t.Error("logs leak ADMIN_TOKEN")
	}
}
