package adminapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

const token = "s3cret-token-0123456789"

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// env is one test's API on its own migrated database.
type env struct {
	db       *testenv.Database
	store    *deadletter.Store
	api      *adminapi.Handler
	registry *prometheus.Registry
}

// newEnv builds the API with the token set, then applies opts.
func newEnv(t *testing.T, opts ...func(*adminapi.Config)) *env {
	t.Helper()
	return newEnvB(t, opts...)
}

// newEnvB is newEnv for benchmarks.
func newEnvB(t testing.TB, opts ...func(*adminapi.Config)) *env {
	t.Helper()
	db := testenv.MigratedPostgres(t)
	store, err := deadletter.New(db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := adminapi.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := adminapi.Config{DeadLetters: store, DB: db.Pool, Token: token, Metrics: metrics}
	for _, o := range opts {
		o(&cfg)
	}
	api, err := adminapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, store: store, api: api, registry: reg}
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v, failing the test on bad JSON.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d %q: %v", r.status, r.body, err)
	}
}

// errorMessage returns the {"error": ...} message, failing when the body
// is not that shape.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	var e map[string]any
	r.decode(t, &e)
	msg, ok := e["error"].(string)
	if !ok || len(e) != 1 || msg == "" {
		t.Fatalf("want {\"error\": \"...\"}, got %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	return msg
}

// do serves one request; auth is the Authorization header ("" for none).
func do(t testing.TB, h http.Handler, method, target, auth string, body io.Reader) response {
	t.Helper()
	req := httptest.NewRequestWithContext(testCtx(t), method, target, body)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// get is an authorised GET.
func (e *env) get(t *testing.T, target string) response {
	t.Helper()
	return do(t, e.api, http.MethodGet, target, "Bearer "+token, nil)
}

// post is an authorised POST of body.
func (e *env) post(t *testing.T, target, body string) response {
	t.Helper()
	return do(t, e.api, http.MethodPost, target, "Bearer "+token, strings.NewReader(body))
}

// record stores dead letters and returns their ids.
func (e *env) record(t *testing.T, dls ...deadletter.DeadLetter) []int64 {
	t.Helper()
	res, err := e.store.Record(testCtx(t), dls)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

// rabbit is a RabbitMQ dead letter of queue with a fresh event id.
func rabbit(queue, eventType string) deadletter.DeadLetter {
	return deadletter.DeadLetter{
		EventID: uuid.New(), Source: deadletter.SourceRabbitMQ, Origin: queue, Reason: "rejected",
		ErrorMessage: "rejected by queue " + queue, EventType: eventType,
		Headers: json.RawMessage(`{"x-first-death-queue":"` + queue + `"}`), Body: []byte(`{"n":1}`),
	}
}

// setLastSeen backdates a dead letter's last_seen_at.
func (e *env) setLastSeen(t *testing.T, id int64, at time.Time) {
	t.Helper()
	if _, err := e.db.Pool.Exec(testCtx(t), `UPDATE dead_letters SET last_seen_at = $2 WHERE id = $1`, id, at); err != nil {
		t.Fatal(err)
	}
}

// writeEvent adds one outbox event of eventType and returns it.
func (e *env) writeEvent(t *testing.T, eventType string) contracts.Envelope {
	t.Helper()
	ev, err := contracts.New(eventType, "order-1", "sales-service", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	var w outbox.Writer
	if err := w.Add(testCtx(t), e.db.Pool, ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// exec runs SQL on the test's database.
func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.db.Pool.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// httpRequest is an authorised POST of body, for tests that adjust it.
func httpRequest(t *testing.T, target, body string) *http.Request {
	t.Helper()
	req := httptest.NewRequestWithContext(testCtx(t), http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// serve serves req.
func serve(h http.Handler, req *http.Request) response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}
