package adminapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// pageRecorder is an outbox.Publisher that takes every record and
// remembers the size of each call.
type pageRecorder struct {
	mu    sync.Mutex
	pages []int   // records per call
	bytes []int64 // value bytes per call
}

func (p *pageRecorder) Publish(_ context.Context, records []outbox.Record) []error {
	var n int64
	for _, r := range records {
		n += int64(len(r.Value))
	}
	p.mu.Lock()
	p.pages, p.bytes = append(p.pages, len(records)), append(p.bytes, n)
	p.mu.Unlock()
	return nil
}

// TestOutboxReplayPagesByBytes pins that POST /replay publishes a range in
// pages bounded by bytes (8 MiB), not all at once: 24 events of 1 MiB go
// out in several pages, each at most 8 MiB plus one event.
func TestOutboxReplayPagesByBytes(t *testing.T) {
	t.Parallel()
	pub := &pageRecorder{}
	e := newEnv(t, func(c *adminapi.Config) { c.Kafka = pub })
	e.exec(t, `INSERT INTO outbox_events (event_id, event_type, aggregate_id, payload, occurred_at)
		SELECT gen_random_uuid(), 'sales.order.placed', 'order-1', jsonb_build_object('pad', repeat('x', 1 << 20)), now()
		FROM generate_series(1, 24)`)
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := e.post(t, "/api/v1/replay?limit=100&from_ts="+from+"&to_ts="+to, "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"replayed_count":24`) {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	total := 0
	for i, n := range pub.pages {
		total += n
		if pub.bytes[i] > 8<<20+(1<<20)+1024 {
			t.Errorf("page %d: %d records, %d bytes: over the 8 MiB bound", i, n, pub.bytes[i])
		}
	}
	if total != 24 || len(pub.pages) < 3 {
		t.Errorf("pages %v (bytes %v): want 24 records in at least 3 pages", pub.pages, pub.bytes)
	}
}

// TestBulkOperationsLimited pins that at most MaxBulkOperations bulk
// operations run at once: one more answers 429 with Retry-After, and is
// audited; once the first ends, bulk operations are taken again.
func TestBulkOperationsLimited(t *testing.T) {
	t.Parallel()
	b := testenv.RabbitMQ(t)
	e := newEnv(t, withQueues(t, b), func(c *adminapi.Config) { c.MaxBulkOperations = 1 })
	ch := b.Channel(t)
	q := declareQueue(t, ch, b.Name("limited"), nil)
	recordMany(t, e, q, 3)
	claimed, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	adminapi.SetAfterClaim(e.api, func() {
		once.Do(func() {
			close(claimed)
			<-release
		})
	})
	first := make(chan response, 1)
	go func() {
		first <- e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":10}`, q))
	}()
	<-claimed
	for _, tc := range []struct{ target, body string }{
		{"/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":10}`, q)},
		{"/api/v1/dead-letters/discard", fmt.Sprintf(`{"queue":%q,"limit":10,"reason":"x"}`, q)},
	} {
		r := e.post(t, tc.target, tc.body)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Errorf("%s while one runs: %d %s (Retry-After %q)", tc.target, r.status, r.body, r.header.Get("Retry-After"))
		}
	}
	close(release)
	if r := <-first; r.status != http.StatusOK || !strings.Contains(string(r.body), `"replayed_count":3`) {
		t.Errorf("first bulk replay: %d %s", r.status, r.body)
	}
	if r := e.post(t, "/api/v1/dead-letters/replay", fmt.Sprintf(`{"queue":%q,"limit":10}`, q)); r.status != http.StatusOK {
		t.Errorf("after the first ended: %d %s", r.status, r.body)
	}
	var refused int
	if err := e.db.Pool.QueryRow(testCtx(t), `SELECT count(*) FROM admin_actions WHERE error LIKE '%bulk operations are running%'`).Scan(&refused); err != nil || refused != 2 {
		t.Errorf("%d refusals audited (%v), want 2", refused, err)
	}
}
