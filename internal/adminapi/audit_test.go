package adminapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

const opsToken = "ops-token-0123456789abcdef"

// auditRow is one admin_actions row.
type auditRow struct {
	action, principal, requestID, target, err string
	dryRun                                    bool
	matched, done, failed                     int
}

func (e *env) auditRows(t *testing.T) []auditRow {
	t.Helper()
	rows, err := e.db.Pool.Query(testCtx(t), `SELECT action, principal, coalesce(request_id, ''), target::text,
		coalesce(error, ''), dry_run, matched_count, done_count, failed_count FROM admin_actions ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.action, &r.principal, &r.requestID, &r.target, &r.err, &r.dryRun, &r.matched, &r.done, &r.failed); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestPrincipalsAndAudit pins DESIGN.md §5/§6/§11: ADMIN_TOKENS principals
// (plaintext or sha256:) and ADMIN_TOKEN's admin are named in
// admin_actions; a wrong token, one given in another case, or a prefix is
// refused; discard one and bulk are audited with principal and reason;
// dry_run changes nothing and is audited as such; every mutating request
// writes one access-log line.
func TestPrincipalsAndAudit(t *testing.T) {
	t.Parallel()
	digest := sha256.Sum256([]byte("ci-token-0123456789abcdef"))
	var logs bytes.Buffer
	e := newEnv(t, func(c *adminapi.Config) {
		c.Tokens = map[string]string{"ops": opsToken, "ci": "sha256:" + hex.EncodeToString(digest[:])}
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	ids := e.record(t, rabbit("orders.q", "sales.order.placed"), rabbit("orders.q", "sales.order.placed"),
		rabbit("orders.q", "sales.order.placed"), rabbit("billing.q", "billing.invoice.sent"))

	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer " + strings.ToUpper(opsToken), http.StatusUnauthorized},
		{"Bearer " + opsToken[:len(opsToken)-1], http.StatusUnauthorized},
		{"Bearer sha256:" + hex.EncodeToString(digest[:]), http.StatusUnauthorized}, // the digest is not the token
		{"Bearer wrong-token-0123456789abcdef", http.StatusUnauthorized},
	} {
		if r := do(t, e.api, http.MethodGet, "/api/v1/dead-letters", tc.auth, nil); r.status != tc.want {
			t.Errorf("%q: %d, want %d", tc.auth, r.status, tc.want)
		}
	}

	req := httpRequest(t, fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[0]), `{"reason":"poison, fixed upstream"}`)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	req.Header.Set("X-Request-Id", "req-42")
	if r := serve(e.api, req); r.status != http.StatusOK || r.header.Get("X-Request-Id") != "req-42" {
		t.Fatalf("discard: %d %s (X-Request-Id %q)", r.status, r.body, r.header.Get("X-Request-Id"))
	}
	dry := do(t, e.api, http.MethodPost, "/api/v1/dead-letters/discard", "Bearer ci-token-0123456789abcdef",
		strings.NewReader(`{"queue":"orders.q","limit":100,"reason":"cleanup","dry_run":true}`))
	if dry.status != http.StatusOK || strings.TrimSpace(string(dry.body)) != `{"matched_count":2,"dry_run":true}` {
		t.Fatalf("dry run: %d %s", dry.status, dry.body)
	}
	if r := e.post(t, "/api/v1/dead-letters/replay", `{"queue":"orders.q","limit":100,"dry_run":true}`); r.status != http.StatusOK ||
		!strings.Contains(string(r.body), `"matched_count":2`) {
		t.Fatalf("replay dry run: %d %s", r.status, r.body)
	}
	var pending int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FROM dead_letters WHERE status = 'pending'`).Scan(&pending); err != nil || pending != 3 {
		t.Fatalf("dry runs changed something: %d pending, %v", pending, err)
	}
	bulk := do(t, e.api, http.MethodPost, "/api/v1/dead-letters/discard", "Bearer ci-token-0123456789abcdef",
		strings.NewReader(`{"queue":"orders.q","limit":100,"reason":"cleanup"}`))
	if bulk.status != http.StatusOK || strings.TrimSpace(string(bulk.body)) != `{"discarded_count":2}` {
		t.Fatalf("bulk discard: %d %s", bulk.status, bulk.body)
	}
	if r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[1]), `{"reason":"again"}`); r.status != http.StatusConflict {
		t.Errorf("discard of a discarded row: %d %s", r.status, r.body)
	}
	if r := e.post(t, "/api/v1/dead-letters/discard", `{"queue":"a\u0000b","limit":1,"reason":"x"}`); r.status != http.StatusBadRequest {
		t.Errorf("NUL in the queue filter: %d %s", r.status, r.body)
	}

	got := e.auditRows(t)
	want := []auditRow{
		{action: adminapi.ActionDiscardDeadLetter, principal: "ops", requestID: "req-42", matched: 1, done: 1},
		{action: adminapi.ActionDiscardDeadLetters, principal: "ci", dryRun: true, matched: 2},
		{action: adminapi.ActionReplayDeadLetters, principal: adminapi.AdminPrincipal, dryRun: true, matched: 2},
		{action: adminapi.ActionDiscardDeadLetters, principal: "ci", matched: 2, done: 2},
		{action: adminapi.ActionDiscardDeadLetter, principal: adminapi.AdminPrincipal, matched: 1, failed: 1},
		{action: adminapi.ActionDiscardDeadLetters, principal: adminapi.AdminPrincipal},
	}
	if len(got) != len(want) {
		t.Fatalf("%d audit rows, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.action != w.action || g.principal != w.principal || g.dryRun != w.dryRun || g.matched != w.matched ||
			g.done != w.done || g.failed != w.failed || (w.requestID != "" && g.requestID != w.requestID) || g.requestID == "" {
			t.Errorf("audit row %d = %+v, want %+v", i, g, w)
		}
	}
	if !strings.Contains(got[0].target, "poison, fixed upstream") || !strings.Contains(got[3].target, `"reason": "cleanup"`) {
		t.Errorf("targets do not name the reason: %s / %s", got[0].target, got[3].target)
	}
	if got[4].err == "" || got[5].err == "" || got[0].err != "" {
		t.Errorf("errors: %q %q %q", got[0].err, got[4].err, got[5].err)
	}
	if n := strings.Count(logs.String(), `"msg":"admin action"`); n != len(want) {
		t.Errorf("%d access-log lines, want %d:\n%s", n, len(want), logs.String())
	}
	if strings.Contains(logs.String(), opsToken) {
		t.Error("the log holds a token")
	}
}

// TestReplayDestinations pins ADMIN_REPLAY_DESTINATIONS: a replay to a
// queue outside the patterns answers 403 naming it, publishes nothing,
// leaves the dead letter pending and unclaimed, and is audited.
func TestReplayDestinations(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	prefix := b.Name("ok")
	e := newEnv(t, withQueues(t, b), func(c *adminapi.Config) { c.ReplayDestinations = []string{"elsewhere", prefix + ".*"} })
	ch := b.Channel(t)
	b.Track(prefix + ".orders")
	allowed := declareQueue(t, ch, prefix+".orders", nil)
	refused := declareQueue(t, ch, b.Name("no"), nil)
	ids := e.record(t, rabbitTo(allowed), rabbitTo(refused))

	for _, target := range []string{fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[1]), "/api/v1/dead-letters/replay"} {
		body := ""
		if !strings.HasSuffix(target, "/replay") || strings.Count(target, "/") == 4 {
			body = `{"limit":10}`
		}
		r := e.post(t, target, body)
		if r.status != http.StatusForbidden || !strings.Contains(r.errorMessage(t), refused) {
			t.Errorf("%s: %d %s; want 403 naming %s", target, r.status, r.body, refused)
		}
	}
	if d := queueDepth(t, ch, refused) + queueDepth(t, ch, allowed); d != 0 {
		t.Errorf("%d messages published", d)
	}
	it, err := e.store.Get(testCtx(t), ids[1])
	if err != nil || it.Status != "pending" || !it.ClaimedAt.IsZero() {
		t.Errorf("refused dead letter: %+v, %v", it, err)
	}
	if r := e.post(t, fmt.Sprintf("/api/v1/dead-letters/%d/replay", ids[0]), ""); r.status != http.StatusOK {
		t.Errorf("allowed replay: %d %s", r.status, r.body)
	}
	a := e.auditRows(t)
	if len(a) != 3 || !strings.Contains(a[0].err, refused) || !strings.Contains(a[1].err, refused) || a[2].done != 1 {
		t.Errorf("audit %+v", a)
	}
}
