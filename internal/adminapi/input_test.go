package adminapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestClientErrorsAre4xx pins issue 16's input rules: a NUL byte or invalid
// UTF-8 in any filter (query or body) is a 400 naming the parameter, never
// a 500 from PostgreSQL; a cursor edited, made up, or reused with another
// filter is refused; a wrong method is 405 with Allow; HEAD is served
// wherever GET is.
func TestClientErrorsAre4xx(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.record(t, rabbit("orders.q", "sales.order.placed"), rabbit("orders.q", "sales.order.placed"),
		rabbit("orders.q", "sales.order.placed"))
	for _, bad := range []string{"a\x00b", "\xff\xfe"} {
		q := url.QueryEscape(bad)
		for _, tc := range []struct{ method, target, body, param string }{
			{"GET", "/api/v1/dead-letters?queue=" + q, "", "queue"},
			{"GET", "/api/v1/dead-letters?event_type=" + q, "", "event_type"},
			{"GET", "/api/v1/dead-letters/summary?queue=" + q, "", "queue"},
			{"GET", "/api/v1/dlq?event_type=" + q, "", "event_type"},
			{"GET", "/api/v1/replay?from_ts=2026-01-01T00:00:00Z&to_ts=2026-01-02T00:00:00Z&event_type=" + q, "", "event_type"},
			{"POST", "/api/v1/replay?from_ts=2026-01-01T00:00:00Z&to_ts=2026-01-02T00:00:00Z&event_type=" + q, "", "event_type"},
			{"GET", "/api/v1/dead-letters?cursor=" + q, "", "cursor"},
			{"GET", "/api/v1/dead-letters?status=" + q, "", "status"},
			{"POST", "/api/v1/dead-letters/replay", `{"limit":1,"queue":"` + jsonEscape(bad) + `"}`, "queue"},
			{"POST", "/api/v1/dead-letters/replay", `{"limit":1,"event_type":"` + jsonEscape(bad) + `"}`, "event_type"},
			{"POST", "/api/v1/dead-letters/discard", `{"limit":1,"reason":"x","queue":"` + jsonEscape(bad) + `"}`, "queue"},
			{"POST", "/api/v1/dead-letters/1/discard", `{"reason":"` + jsonEscape(bad) + `"}`, "reason"},
		} {
			var body *strings.Reader
			if tc.method == "POST" {
				body = strings.NewReader(tc.body)
			}
			var r response
			if body != nil {
				r = do(t, e.api, tc.method, tc.target, "Bearer "+token, body)
			} else {
				r = do(t, e.api, tc.method, tc.target, "Bearer "+token, nil)
			}
			if r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), tc.param) &&
				!strings.Contains(r.errorMessage(t), "not valid UTF-8") {
				t.Errorf("%s %q %q: %d %s; want 400 naming %s", tc.method, tc.target, tc.body, r.status, r.body, tc.param)
			}
		}
	}

	// Cursors: the real one works; edited, made up, or with another filter, not.
	var p listPage
	e.get(t, "/api/v1/dead-letters?limit=1").decode(t, &p)
	if p.NextCursor == nil {
		t.Fatal("no next cursor")
	}
	c := *p.NextCursor
	if r := e.get(t, "/api/v1/dead-letters?limit=1&cursor="+url.QueryEscape(c)); r.status != http.StatusOK {
		t.Errorf("own cursor: %d %s", r.status, r.body)
	}
	inner, mac, _ := strings.Cut(c, ".")
	edited := []byte(inner)
	edited[len(edited)-2] ^= 1
	for name, bad := range map[string]string{
		"edited position": string(edited) + "." + mac,
		"edited mac":      inner + "." + strings.Repeat("A", len(mac)),
		"no mac":          inner,
	} {
		if r := e.get(t, "/api/v1/dead-letters?limit=1&cursor="+url.QueryEscape(bad)); r.status != http.StatusBadRequest ||
			!strings.Contains(r.errorMessage(t), "cursor") {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := e.get(t, "/api/v1/dead-letters?limit=1&queue=orders.q&cursor="+url.QueryEscape(c)); r.status != http.StatusBadRequest {
		t.Errorf("cursor of another filter: %d %s", r.status, r.body)
	}

	// 405 with Allow; HEAD where GET.
	for _, tc := range []struct{ method, target, allow string }{
		{http.MethodDelete, "/api/v1/dead-letters", "GET, HEAD"},
		{http.MethodGet, "/api/v1/dead-letters/1/replay", "POST"},
		{http.MethodPut, "/api/v1/replay", "GET, HEAD, POST"},
	} {
		r := do(t, e.api, tc.method, tc.target, "Bearer "+token, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.target, r.status, r.header.Get("Allow"), tc.allow)
		}
	}
	srv := httptest.NewServer(e.api)
	defer srv.Close()
	for _, target := range []string{"/api/v1/dead-letters", "/api/v1/dead-letters/summary", "/health/outbox", "/api/v1/openapi.json"} {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodHead, srv.URL+target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("HEAD %s: %d %q", target, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// jsonEscape writes s as JSON string content; invalid UTF-8 stays as raw
// bytes, which encoding/json reads as U+FFFD, and NUL becomes \u0000.
func jsonEscape(s string) string {
	return strings.ReplaceAll(s, "\x00", `\u0000`)
}
