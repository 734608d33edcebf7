package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Load drives the example producer over HTTP, as its users would.
type Load struct {
	Addr    string       // the producer's host:port
	Client  *http.Client // nil: a client with a 10 s timeout
	Workers int          // concurrent requests; 0 means 8
	Rate    float64      // most requests per second; 0 means unlimited
	// Retry makes a failed request (an error or a non-2xx answer, as while
	// the producer's database is down) be sent again after RetryWait until
	// it succeeds or ctx ends, instead of ending the run. A request whose
	// answer was lost may then have been committed twice: the outbox, not
	// Written, is what counts.
	Retry bool

	Written atomic.Int64 // events the producer committed (one per 2xx answer)
	Failed  atomic.Int64 // requests that failed and were sent again (Retry)
}

// RetryWait is the wait before a failed request is sent again.
const RetryWait = 250 * time.Millisecond

// Run creates orders, then adds linesPerOrder lines to each, until it has
// written orders*(1+linesPerOrder) events or ctx ends. The lines of one
// order are requested concurrently by several workers, so the producer's
// per-order lock, and the outbox's per-aggregate order, are exercised.
// orders < 0 means no end: it keeps creating orders until ctx ends.
func (l *Load) Run(ctx context.Context, orders, linesPerOrder int) error {
	client := l.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	workers := l.Workers
	if workers <= 0 {
		workers = 8
	}
	limit := rate.Inf
	if l.Rate > 0 {
		limit = rate.Limit(l.Rate)
	}
	limiter := rate.NewLimiter(limit, workers)

	// A round is one order per worker and then their lines, interleaved so
	// that every worker adds lines to every order of the round.
	type job struct{ order string }
	jobs := make(chan job)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if err := limiter.Wait(ctx); err != nil {
					return
				}
				var err error
				if j.order == "" {
					_, err = l.send(ctx, client, "/orders", map[string]any{"customer": "demo-customer"})
				} else {
					_, err = l.send(ctx, client, "/orders/"+j.order+"/lines", map[string]any{"sku": "SKU-1", "qty": 1})
				}
				if err != nil && ctx.Err() == nil {
					errc <- err
					return
				}
			}
		})
	}
	err := func() error {
		defer close(jobs)
		for done := 0; orders < 0 || done < orders; {
			n := workers
			if orders >= 0 && orders-done < n {
				n = orders - done
			}
			ids := make([]string, n)
			for i := range ids {
				if err := limiter.Wait(ctx); err != nil {
					return nil
				}
				id, err := l.send(ctx, client, "/orders", map[string]any{"customer": fmt.Sprintf("customer-%d", done+i)})
				if err != nil {
					return err
				}
				ids[i] = id
			}
			done += n
			for range linesPerOrder {
				for _, id := range ids {
					select {
					case jobs <- job{order: id}:
					case err := <-errc:
						return err
					case <-ctx.Done():
						return nil
					}
				}
			}
		}
		return nil
	}()
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	if ctx.Err() != nil {
		return nil // stopped, as asked
	}
	return err
}

// send posts, and with Retry posts again after each failure until it
// succeeds or ctx ends.
func (l *Load) send(ctx context.Context, client *http.Client, path string, body any) (string, error) {
	for {
		id, err := l.post(ctx, client, path, body)
		if err == nil || !l.Retry || ctx.Err() != nil {
			return id, err
		}
		l.Failed.Add(1)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(RetryWait):
		}
	}
}

// post sends one request and returns the "id" or "orderId" of the answer.
func (l *Load) post(ctx context.Context, client *http.Client, path string, body any) (string, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+l.Addr+path, bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(out))
	}
	l.Written.Add(1)
	var answer struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(out, &answer)
	return answer.ID, nil
}
