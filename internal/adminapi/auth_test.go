package adminapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
)

// TestAuth pins DESIGN.md §7's access rules: /api/v1 needs the bearer
// token (reads too, unless ReadOpen), answers 503 when none is configured,
// and the OpenAPI document and /health stay open.
func TestAuth(t *testing.T) {
	t.Parallel()
	withToken := newEnv(t)
	noToken := newEnv(t, func(c *adminapi.Config) { c.Token = "" })
	noTokenReadOpen := newEnv(t, func(c *adminapi.Config) { c.Token = ""; c.ReadOpen = true })
	readOpen := newEnv(t, func(c *adminapi.Config) { c.ReadOpen = true })
	const discard = `{"reason":"x"}`

	tests := []struct {
		name          string
		env           *env
		method, path  string
		auth          string
		want          int
		wantErrSubstr string
	}{
		{"token: right", withToken, http.MethodGet, "/api/v1/dead-letters", "Bearer " + token, http.StatusOK, ""},
		{"token: scheme case-insensitive", withToken, http.MethodGet, "/api/v1/dead-letters", "bearer " + token, http.StatusOK, ""},
		{"token: missing", withToken, http.MethodGet, "/api/v1/dead-letters", "", http.StatusUnauthorized, "missing"},
		{"token: wrong", withToken, http.MethodGet, "/api/v1/outbox/stats", "Bearer nope", http.StatusUnauthorized, "invalid"},
		{"token: prefix of the right one", withToken, http.MethodGet, "/api/v1/dlq", "Bearer " + token[:4], http.StatusUnauthorized, "invalid"},
		{"token: basic scheme", withToken, http.MethodGet, "/api/v1/dlq", "Basic " + token, http.StatusUnauthorized, "missing"},
		{"token: POST without", withToken, http.MethodPost, "/api/v1/dead-letters/1/discard", "", http.StatusUnauthorized, ""},
		{"token: openapi open", withToken, http.MethodGet, "/api/v1/openapi.json", "", http.StatusOK, ""},
		{"token: health open", withToken, http.MethodGet, "/health", "", http.StatusOK, ""},
		{"token: health/outbox open", withToken, http.MethodGet, "/health/outbox", "", http.StatusOK, ""},
		{"unset: GET", noToken, http.MethodGet, "/api/v1/dead-letters", "Bearer " + token, http.StatusServiceUnavailable, "ADMIN_TOKEN is not set"},
		{"unset: POST", noToken, http.MethodPost, "/api/v1/dead-letters/1/discard", "", http.StatusServiceUnavailable, "ADMIN_TOKEN is not set"},
		{"unset: empty bearer", noToken, http.MethodGet, "/api/v1/dlq", "Bearer ", http.StatusServiceUnavailable, "ADMIN_TOKEN is not set"},
		{"unset: read open does not enable", noTokenReadOpen, http.MethodGet, "/api/v1/dead-letters", "", http.StatusServiceUnavailable, "ADMIN_TOKEN is not set"},
		{"unset: openapi still served", noToken, http.MethodGet, "/api/v1/openapi.json", "", http.StatusOK, ""},
		{"unset: health still served", noToken, http.MethodGet, "/health", "", http.StatusOK, ""},
		{"read open: GET without token", readOpen, http.MethodGet, "/api/v1/dead-letters", "", http.StatusOK, ""},
		{"read open: GET with wrong token", readOpen, http.MethodGet, "/api/v1/outbox/stats", "Bearer nope", http.StatusOK, ""},
		{"read open: POST without token", readOpen, http.MethodPost, "/api/v1/dead-letters/1/discard", "", http.StatusUnauthorized, ""},
		{"read open: POST wrong token", readOpen, http.MethodPost, "/api/v1/dead-letters/1/discard", "Bearer nope", http.StatusUnauthorized, ""},
		{"unknown route", withToken, http.MethodGet, "/api/v1/nope", "Bearer " + token, http.StatusNotFound, "no such route"},
		{"unknown route without token", withToken, http.MethodGet, "/api/v1/nope", "", http.StatusNotFound, "no such route"},
		{"wrong method", withToken, http.MethodDelete, "/api/v1/dead-letters", "Bearer " + token, http.StatusMethodNotAllowed, "not allowed"},
		{"wrong method on discard", withToken, http.MethodGet, "/api/v1/dead-letters/1/discard", "Bearer " + token, http.StatusMethodNotAllowed, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body *strings.Reader
			if tc.method == http.MethodPost {
				body = strings.NewReader(discard)
			}
			var r response
			if body != nil {
				r = do(t, tc.env.api, tc.method, tc.path, tc.auth, body)
			} else {
				r = do(t, tc.env.api, tc.method, tc.path, tc.auth, nil)
			}
			if r.status != tc.want {
				t.Fatalf("%s %s: status %d, want %d: %s", tc.method, tc.path, r.status, tc.want, r.body)
			}
			if tc.want >= 400 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tc.wantErrSubstr) {
					t.Errorf("error %q does not contain %q", msg, tc.wantErrSubstr)
				}
			}
			if tc.want == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}
