package adminapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// fakeStore answers ErrNotFound to reads and updates of one dead letter:
// enough for tests that need a Handler but no database. Other methods
// are not implemented (nil interface: they panic).
type fakeStore struct{ adminapi.DeadLetterStore }

func (fakeStore) List(context.Context, deadletter.Filter) (deadletter.Page, error) {
	return deadletter.Page{}, nil
}
func (fakeStore) Get(context.Context, int64) (deadletter.Item, error) {
	return deadletter.Item{}, deadletter.ErrNotFound
}
func (fakeStore) MarkDiscarded(context.Context, int64, string) (deadletter.Item, error) {
	return deadletter.Item{}, deadletter.ErrNotFound
}

func unitHandler(t *testing.T, m *adminapi.Metrics) *adminapi.Handler {
	t.Helper()
	h, err := adminapi.New(adminapi.Config{DeadLetters: fakeStore{}, DB: brokenDB{}, Token: token, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestOpenAPIMatchesRouter is the CI check of DESIGN.md §7: every route
// of the router is in the OpenAPI document, and every documented
// path+method is a route.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	h := unitHandler(t, nil)
	var routes []string
	err := chi.Walk(h.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(adminapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented = append(documented, strings.ToUpper(method)+" "+path)
				if !hasExample(op) {
					t.Errorf("%s %s: no response has an example", method, path)
				}
			}
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not documented", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("documented %s is not a route", d)
		}
	}
	if len(routes) < 8 {
		t.Errorf("walked only %v", routes)
	}
}

// hasExample reports whether some response of the operation op carries an
// example of its JSON body.
func hasExample(op json.RawMessage) bool {
	var o struct {
		Responses map[string]struct {
			Content map[string]struct {
				Example json.RawMessage `json:"example"`
			} `json:"content"`
		} `json:"responses"`
	}
	if json.Unmarshal(op, &o) != nil {
		return false
	}
	for _, r := range o.Responses {
		for _, c := range r.Content {
			if len(c.Example) > 0 {
				return true
			}
		}
	}
	return false
}

// TestOpenAPIServed pins that the document is served without a token, also
// when none is configured, as the embedded JSON.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	h, err := adminapi.New(adminapi.Config{DeadLetters: fakeStore{}, DB: brokenDB{}})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, h, http.MethodGet, "/api/v1/openapi.json", "", nil)
	if r.status != http.StatusOK || string(r.body) != string(adminapi.OpenAPI()) ||
		r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %.100s", r.status, r.body)
	}
}

// TestMetrics pins that requests are counted by route pattern, never the
// raw path, and by status.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := adminapi.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminapi.NewMetrics(reg); err == nil {
		t.Error("registering twice: no error")
	}
	h := unitHandler(t, m)
	for _, id := range []string{"1", "2", "3"} {
		do(t, h, http.MethodGet, "/api/v1/dead-letters/"+id, "Bearer "+token, nil)
	}
	do(t, h, http.MethodGet, "/api/v1/dead-letters/x", "Bearer "+token, nil)
	do(t, h, http.MethodGet, "/api/v1/dead-letters/1", "", nil)
	do(t, h, http.MethodGet, "/api/v1/no/such/path", "", nil)
	do(t, h, "BREW", "/api/v1/dlq", "", nil)

	// series maps "route method status" to the counter's value; histogram
	// series count under "route method".
	series := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "messagekit_admin_requests_total":
				series[labels["route"]+" "+labels["method"]+" "+labels["status"]] = m.GetCounter().GetValue()
			case "messagekit_admin_request_duration_seconds":
				series[labels["route"]+" "+labels["method"]] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"/api/v1/dead-letters/{id} GET 404": 3,
		"/api/v1/dead-letters/{id} GET 400": 1,
		"/api/v1/dead-letters/{id} GET 401": 1,
		"unmatched GET 404":                 1,
		"unmatched other 405":               1, // chi sets no pattern on a 405
		"/api/v1/dead-letters/{id} GET":     5,
		"unmatched GET":                     1,
		"unmatched other":                   1,
	}
	if !maps.Equal(series, want) {
		t.Errorf("series\n got %v\nwant %v", series, want)
	}
}

// panicStore panics, as a bug in a handler's dependency would.
type panicStore struct{ fakeStore }

func (panicStore) Get(context.Context, int64) (deadletter.Item, error) { panic("boom") }

// TestPanicIsJSON500 pins that a panic is answered with the JSON error
// shape and counted, not a dropped connection.
func TestPanicIsJSON500(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := adminapi.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	h, err := adminapi.New(adminapi.Config{DeadLetters: panicStore{}, DB: brokenDB{}, Token: token, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, h, http.MethodGet, "/api/v1/dead-letters/1", "Bearer "+token, nil)
	if msg := r.errorMessage(t); r.status != http.StatusInternalServerError || strings.Contains(msg, "boom") {
		t.Errorf("%d %q", r.status, msg)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "status" && l.GetValue() == "500" {
					counted = true
				}
			}
		}
	}
	if !counted {
		t.Error("the 500 is not counted")
	}
}

// TestNewRequiresDependencies pins New's errors.
func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]adminapi.Config{
		"no store": {DB: brokenDB{}},
		"no db":    {DeadLetters: fakeStore{}},
	} {
		if _, err := adminapi.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
