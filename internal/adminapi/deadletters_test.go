package adminapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

type listedItem struct {
	ID            int64      `json:"id"`
	EventID       *string    `json:"event_id"`
	Source        string     `json:"source"`
	Origin        string     `json:"origin"`
	Reason        string     `json:"reason"`
	ErrorMessage  *string    `json:"error_message"`
	DeathCount    int        `json:"death_count"`
	Status        string     `json:"status"`
	FirstSeenAt   time.Time  `json:"first_seen_at"`
	LastSeenAt    time.Time  `json:"last_seen_at"`
	ReplayCount   int        `json:"replay_count"`
	ReplayedAt    *time.Time `json:"replayed_at"`
	DiscardReason *string    `json:"discard_reason"`
}

type listPage struct {
	Items      []listedItem `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

// TestListDeadLettersPagination pins the listing's order (newest
// last_seen_at first, ties by highest id) and that walking the cursor
// visits every row exactly once, with next_cursor null on the last page.
func TestListDeadLettersPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var dls []deadletter.DeadLetter
	for i := range 11 {
		dls = append(dls, rabbit(fmt.Sprintf("q%d", i%3), "sales.order.placed"))
	}
	ids := e.record(t, dls...)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range ids {
		// Pairs share a last_seen_at, so ties need the id tie-break.
		e.setLastSeen(t, id, base.Add(time.Duration(i/2)*time.Minute))
	}
	want := slices.Clone(ids)
	slices.SortFunc(want, func(a, b int64) int {
		ia, ib := slices.Index(ids, a)/2, slices.Index(ids, b)/2
		if ia != ib {
			return ib - ia
		}
		return int(b - a)
	})

	for _, limit := range []int{1, 3, 4, 11, 1000} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			t.Parallel()
			var got []int64
			cursor, pages := "", 0
			for {
				q := url.Values{"limit": {fmt.Sprint(limit)}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				r := e.get(t, "/api/v1/dead-letters?"+q.Encode())
				if r.status != http.StatusOK {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				var p listPage
				r.decode(t, &p)
				pages++
				if len(p.Items) > limit {
					t.Fatalf("page of %d items, limit %d", len(p.Items), limit)
				}
				for _, it := range p.Items {
					got = append(got, it.ID)
				}
				if p.NextCursor == nil {
					break
				}
				if len(p.Items) != limit {
					t.Fatalf("short page (%d) with a next cursor", len(p.Items))
				}
				cursor = *p.NextCursor
				if pages > len(ids)+1 {
					t.Fatal("pagination does not end")
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ids across pages\n got %v\nwant %v", got, want)
			}
		})
	}

	t.Run("default limit and fields", func(t *testing.T) {
		t.Parallel()
		r := e.get(t, "/api/v1/dead-letters")
		var p listPage
		r.decode(t, &p)
		if len(p.Items) != len(ids) || p.NextCursor != nil {
			t.Fatalf("%d items, cursor %v", len(p.Items), p.NextCursor)
		}
		it := p.Items[0]
		if it.EventID == nil || it.Source != "rabbitmq" || it.Reason != "rejected" || it.Status != "pending" ||
			it.DeathCount != 1 || it.ErrorMessage == nil || it.ReplayedAt != nil || !it.LastSeenAt.Equal(base.Add(5*time.Minute)) {
			t.Errorf("item %+v", it)
		}
		for _, field := range []string{`"next_cursor":null`, `"replayed_at":null`, `"first_seen_at":`, `"replay_count":0`} {
			if !strings.Contains(string(r.body), field) {
				t.Errorf("body lacks %s: %s", field, r.body)
			}
		}
	})
}

// TestListDeadLettersFilters pins each filter, "queue" meaning the origin.
func TestListDeadLettersFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	kafka := deadletter.DeadLetter{EventID: uuid.New(), Source: deadletter.SourceKafka, Origin: "orders",
		Reason: "VALUE_CONVERTER", EventType: "sales.order.shipped", Body: []byte("{}")}
	ids := e.record(t, rabbit("orders.q", "sales.order.placed"), rabbit("billing.q", "sales.order.placed"), kafka)
	e.setLastSeen(t, ids[0], time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e.setLastSeen(t, ids[1], time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	e.setLastSeen(t, ids[2], time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if _, err := e.store.MarkDiscarded(testCtx(t), ids[1], "no"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		query string
		want  []int64
	}{
		{"source=kafka", []int64{ids[2]}},
		{"source=rabbitmq", []int64{ids[1], ids[0]}},
		{"status=pending", []int64{ids[2], ids[0]}},
		{"status=discarded", []int64{ids[1]}},
		{"status=replayed", nil},
		{"queue=orders.q", []int64{ids[0]}},
		{"queue=orders", []int64{ids[2]}},
		{"event_type=sales.order.placed", []int64{ids[1], ids[0]}},
		{"since=2026-02-01T00:00:00Z", []int64{ids[2], ids[1]}},
		{"until=2026-02-01T00:00:00Z", []int64{ids[1], ids[0]}},
		{"since=2026-01-15T00:00:00%2B01:00&until=2026-02-15T00:00:00.5Z", []int64{ids[1]}},
		{"source=rabbitmq&status=pending&queue=orders.q&event_type=sales.order.placed", []int64{ids[0]}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			r := e.get(t, "/api/v1/dead-letters?"+tc.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var p listPage
			r.decode(t, &p)
			var got []int64
			for _, it := range p.Items {
				got = append(got, it.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestListDeadLettersBadInput pins that invalid parameters are a 400 that
// names the parameter, never a 500 or an unfiltered listing.
func TestListDeadLettersBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct{ query, param string }{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=-1", "limit"},
		{"limit=ten", "limit"},
		{"limit=99999999999999999999", "limit"},
		{"since=yesterday", "since"},
		{"since=2026-01-01", "since"},
		{"until=2026-01-01T00:00:00", "until"},
		{"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"},
		{"status=lost", "status"},
		{"source=sqs", "source"},
		{"cursor=not-a-cursor", "cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			r := e.get(t, "/api/v1/dead-letters?"+tc.query)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, tc.param) {
				t.Errorf("error %q does not name %s", msg, tc.param)
			}
		})
	}
}

type detailItem struct {
	listedItem
	OriginDetail map[string]any `json:"origin_detail"`
	Headers      map[string]any `json:"headers"`
	Key          *string        `json:"key"`
	KeyEncoding  *string        `json:"key_encoding"`
	Body         string         `json:"body"`
	BodyEncoding string         `json:"body_encoding"`
}

// TestGetDeadLetter pins the detail document: body and key as text when
// valid UTF-8, else base64, key null when absent; 400 for a malformed id,
// 404 for an unknown one.
func TestGetDeadLetter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	binary := []byte{0xff, 0x00, 0xfe, 'a'}
	text := rabbit("orders.q", "sales.order.placed")
	text.OriginDetail = map[string]any{"exchange": "events"}
	bin := deadletter.DeadLetter{Source: deadletter.SourceKafka, Origin: "orders", Reason: "VALUE_CONVERTER",
		Key: binary, Body: binary}
	utf8Key := deadletter.DeadLetter{Source: deadletter.SourceKafka, Origin: "orders", Reason: "VALUE_CONVERTER",
		Key: []byte("order-1"), Body: []byte("héllo")}
	ids := e.record(t, text, bin, utf8Key)

	t.Run("utf8 body, no key", func(t *testing.T) {
		t.Parallel()
		r := e.get(t, fmt.Sprintf("/api/v1/dead-letters/%d", ids[0]))
		var d detailItem
		r.decode(t, &d)
		if r.status != http.StatusOK || d.ID != ids[0] || d.Body != `{"n":1}` || d.BodyEncoding != "utf8" ||
			d.Key != nil || d.KeyEncoding != nil || d.OriginDetail["exchange"] != "events" ||
			d.Headers["x-first-death-queue"] != "orders.q" || d.EventID == nil || *d.EventID != text.EventID.String() {
			t.Errorf("%d %s", r.status, r.body)
		}
		if !strings.Contains(string(r.body), `"key":null`) {
			t.Errorf("key not null: %s", r.body)
		}
	})
	t.Run("binary body and key", func(t *testing.T) {
		t.Parallel()
		r := e.get(t, fmt.Sprintf("/api/v1/dead-letters/%d", ids[1]))
		var d detailItem
		r.decode(t, &d)
		want := base64.StdEncoding.EncodeToString(binary)
		if r.status != http.StatusOK || d.Body != want || d.BodyEncoding != "base64" ||
			d.Key == nil || *d.Key != want || *d.KeyEncoding != "base64" || d.EventID != nil {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
	t.Run("utf8 key", func(t *testing.T) {
		t.Parallel()
		r := e.get(t, fmt.Sprintf("/api/v1/dead-letters/%d", ids[2]))
		var d detailItem
		r.decode(t, &d)
		if d.Body != "héllo" || d.BodyEncoding != "utf8" || d.Key == nil || *d.Key != "order-1" || *d.KeyEncoding != "utf8" {
			t.Errorf("%d %s", r.status, r.body)
		}
	})

	for _, tc := range []struct {
		id   string
		want int
	}{
		{"999999", http.StatusNotFound},
		{"abc", http.StatusBadRequest},
		{"0", http.StatusBadRequest},
		{"-1", http.StatusBadRequest},
		{"1.5", http.StatusBadRequest},
		{"1e3", http.StatusBadRequest},
		{"99999999999999999999", http.StatusBadRequest},
		{"%20" + fmt.Sprint(ids[0]), http.StatusBadRequest},
	} {
		t.Run("id="+tc.id, func(t *testing.T) {
			t.Parallel()
			r := e.get(t, "/api/v1/dead-letters/"+tc.id)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
			msg := r.errorMessage(t)
			if tc.want == http.StatusBadRequest && !strings.Contains(msg, "id") {
				t.Errorf("error %q does not name the id", msg)
			}
		})
	}
}

// TestDiscard pins POST /dead-letters/{id}/discard: the reason is
// required and bounded, the body strict JSON of at most 1 MiB, and only a
// pending dead letter can be discarded (409 otherwise).
func TestDiscard(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.record(t, rabbit("orders.q", "a.b.c"), rabbit("orders.q", "a.b.c"))
	path := fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[0])

	r := e.post(t, path, `{"reason":"  poison message  "}`)
	var d detailItem
	r.decode(t, &d)
	if r.status != http.StatusOK || d.Status != "discarded" || d.DiscardReason == nil || *d.DiscardReason != "poison message" || d.ID != ids[0] {
		t.Fatalf("discard: %d %s", r.status, r.body)
	}
	got, err := e.store.Get(testCtx(t), ids[0])
	if err != nil || got.Status != deadletter.StatusDiscarded {
		t.Fatalf("stored: %+v %v", got, err)
	}
	r = e.post(t, path, `{"reason":"again"}`)
	if r.status != http.StatusConflict || !strings.Contains(r.errorMessage(t), "not pending") {
		t.Fatalf("second discard: %d %s", r.status, r.body)
	}

	other := fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[1])
	huge := `{"reason":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name, path, body string
		chunked          bool
		want             int
		errSubstr        string
	}{
		{"unknown id", "/api/v1/dead-letters/999999/discard", `{"reason":"x"}`, false, http.StatusNotFound, "not found"},
		{"malformed id", "/api/v1/dead-letters/x1/discard", `{"reason":"x"}`, false, http.StatusBadRequest, "id"},
		{"malformed JSON", other, `{"reason":`, false, http.StatusBadRequest, "request body"},
		{"not an object", other, `["x"]`, false, http.StatusBadRequest, "request body"},
		{"empty body", other, ``, false, http.StatusBadRequest, "request body"},
		{"unknown field", other, `{"reason":"x","force":true}`, false, http.StatusBadRequest, "force"},
		{"trailing data", other, `{"reason":"x"} {"reason":"y"}`, false, http.StatusBadRequest, "single JSON object"},
		{"reason missing", other, `{}`, false, http.StatusBadRequest, "reason"},
		{"reason blank", other, `{"reason":" \t "}`, false, http.StatusBadRequest, "reason"},
		{"reason wrong type", other, `{"reason":5}`, false, http.StatusBadRequest, "reason"},
		{"reason too long", other, `{"reason":"` + strings.Repeat("x", deadletter.MaxDiscardReasonBytes+1) + `"}`, false, http.StatusBadRequest, "reason"},
		{"oversized body", other, huge, false, http.StatusRequestEntityTooLarge, "1 MiB"},
		{"oversized chunked body", other, huge, true, http.StatusRequestEntityTooLarge, "1 MiB"},
	}
	// The group returns once its parallel cases are done.
	t.Run("bad input", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var r response
				if tc.chunked {
					req := httpRequest(t, tc.path, tc.body)
					req.ContentLength = -1 // as with Transfer-Encoding: chunked
					r = serve(e.api, req)
				} else {
					r = e.post(t, tc.path, tc.body)
				}
				if r.status != tc.want {
					t.Fatalf("status %d, want %d: %.200s", r.status, tc.want, r.body)
				}
				if msg := r.errorMessage(t); !strings.Contains(msg, tc.errSubstr) {
					t.Errorf("error %q does not contain %q", msg, tc.errSubstr)
				}
			})
		}
	})
	it, err := e.store.Get(testCtx(t), ids[1])
	if err != nil || it.Status != deadletter.StatusPending {
		t.Errorf("after rejected requests, dead letter %d is %q (%v), want pending", ids[1], it.Status, err)
	}
}
