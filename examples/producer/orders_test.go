package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// outboxEvent reads the outbox row of eventID and decodes its payload.
func outboxEvent(t *testing.T, db *testenv.Database, eventID string) (contracts.Envelope, *string) {
	t.Helper()
	var payload []byte
	var traceparent *string
	err := db.Pool.QueryRow(context.Background(),
		"SELECT payload, traceparent FROM outbox_events WHERE event_id = $1", eventID).Scan(&payload, &traceparent)
	if err != nil {
		t.Fatalf("outbox row of event %s: %v", eventID, err)
	}
	env, err := contracts.Decode(payload)
	if err != nil {
		t.Fatalf("outbox payload %s: %v", payload, err)
	}
	return env, traceparent
}

func count(t *testing.T, db *testenv.Database, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// POST /orders commits the order and its outbox event together; the event
// is the contract's sales.order.created and carries the caller's trace.
func TestCreateOrderWritesOrderAndEvent(t *testing.T) {
	t.Parallel()
	s := startService(t, testenv.MigratedPostgres(t), nil)
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	for _, tc := range []struct{ name, body, wantID string }{
		{"generated id", `{"customer":"ada"}`, ""},
		{"given id", `{"customer":"ada","id":"order-42"}`, "order-42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := s.post(t, "/orders", tc.body, "traceparent", traceparent)
			if status != http.StatusCreated {
				t.Fatalf("POST /orders: %d %s", status, body)
			}
			var resp createOrderResponse
			decodeBody(t, body, &resp)
			if tc.wantID != "" && resp.ID != tc.wantID {
				t.Errorf("id %q, want %q", resp.ID, tc.wantID)
			}
			if _, err := uuid.Parse(resp.ID); tc.wantID == "" && err != nil {
				t.Errorf("generated id %q is not a UUID", resp.ID)
			}

			var customer string
			if err := s.db.Pool.QueryRow(context.Background(), "SELECT customer FROM orders WHERE id = $1", resp.ID).Scan(&customer); err != nil || customer != "ada" {
				t.Fatalf("order row: %q, %v", customer, err)
			}
			env, gotTrace := outboxEvent(t, s.db, resp.EventID)
			data, err := orderCreated.Decode(env)
			switch {
			case err != nil:
				t.Fatal(err)
			case env.AggregateID != resp.ID || env.Source != "sales-service":
				t.Errorf("aggregateId %q source %q, want %q sales-service", env.AggregateID, env.Source, resp.ID)
			case data != OrderCreated{OrderID: resp.ID, Customer: "ada"}:
				t.Errorf("data %+v", data)
			case gotTrace == nil || *gotTrace != traceparent:
				t.Errorf("traceparent %v, want the request's %s", gotTrace, traceparent)
			}
		})
	}
}

// A request whose insert fails leaves nothing behind: the duplicate order
// is refused with 409 and its event was rolled back with it.
func TestDuplicateOrderWritesNoEvent(t *testing.T) {
	t.Parallel()
	s := startService(t, testenv.MigratedPostgres(t), nil)
	if status, body := s.post(t, "/orders", `{"id":"o-1","customer":"ada"}`); status != http.StatusCreated {
		t.Fatalf("first POST: %d %s", status, body)
	}
	status, body := s.post(t, "/orders", `{"id":"o-1","customer":"bob"}`)
	if status != http.StatusConflict || !strings.Contains(string(body), `o-1`) {
		t.Fatalf("second POST: %d %s, want 409 naming o-1", status, body)
	}
	if n := count(t, s.db, "SELECT count(*) FROM outbox_events WHERE aggregate_id = 'o-1'"); n != 1 {
		t.Fatalf("%d outbox rows for o-1, want 1: the failed request's event must roll back", n)
	}
	if n := count(t, s.db, "SELECT count(*) FROM orders WHERE id = 'o-1' AND customer = 'ada'"); n != 1 {
		t.Fatal("the first order was changed")
	}
}

// Concurrent requests for one order get line numbers 1..n, each once, and
// each line's event says the same as its row.
func TestConcurrentLinesAreNumberedInOrder(t *testing.T) {
	t.Parallel()
	s := startService(t, testenv.MigratedPostgres(t), nil)
	if status, body := s.post(t, "/orders", `{"id":"o-7","customer":"ada"}`); status != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", status, body)
	}
	const n = 8
	responses := make([]addLineResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, body := s.post(t, "/orders/o-7/lines", fmt.Sprintf(`{"sku":"sku-%d","qty":%d}`, i, i+1))
			if status != http.StatusCreated {
				t.Errorf("POST line %d: %d %s", i, status, body)
				return
			}
			decodeBody(t, body, &responses[i])
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var lineNos []int
	for i, resp := range responses {
		lineNos = append(lineNos, resp.LineNo)
		var sku string
		var qty int
		err := s.db.Pool.QueryRow(context.Background(),
			"SELECT sku, qty FROM order_lines WHERE order_id = 'o-7' AND line_no = $1", resp.LineNo).Scan(&sku, &qty)
		if err != nil || sku != fmt.Sprint("sku-", i) || qty != i+1 {
			t.Errorf("line %d: row %q %d (%v), want sku-%d %d", resp.LineNo, sku, qty, err, i, i+1)
		}
		env, _ := outboxEvent(t, s.db, resp.EventID)
		data, err := orderLineAdded.Decode(env)
		if want := (OrderLineAdded{OrderID: "o-7", LineNo: resp.LineNo, SKU: sku, Qty: qty}); err != nil || data != want || env.AggregateID != "o-7" {
			t.Errorf("event of line %d: %+v (%v), aggregate %q; want %+v", resp.LineNo, data, err, env.AggregateID, want)
		}
	}
	slices.Sort(lineNos)
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(lineNos, want) {
		t.Errorf("line numbers %v, want %v", lineNos, want)
	}
	if c := count(t, s.db, "SELECT line_count FROM orders WHERE id = 'o-7'"); c != n {
		t.Errorf("line_count %d, want %d", c, n)
	}
	if c := count(t, s.db, "SELECT count(*) FROM outbox_events WHERE event_type = 'sales.order.line-added'"); c != n {
		t.Errorf("%d line-added events, want %d", c, n)
	}
}

// Invalid requests are refused with the field named, and write nothing.
func TestInvalidRequestsWriteNothing(t *testing.T) {
	t.Parallel()
	s := startService(t, testenv.MigratedPostgres(t), nil)
	if status, body := s.post(t, "/orders", `{"id":"o-1","customer":"ada"}`); status != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", status, body)
	}
	tables := func() [3]int {
		return [3]int{
			count(t, s.db, "SELECT count(*) FROM orders"),
			count(t, s.db, "SELECT count(*) FROM order_lines"),
			count(t, s.db, "SELECT count(*) FROM outbox_events"),
		}
	}
	before := tables()

	for _, tc := range []struct {
		name, path, body string
		status           int
		wantErr          string
	}{
		{"not JSON", "/orders", `customer=ada`, 400, "malformed JSON"},
		{"empty body", "/orders", ``, 400, "JSON object"},
		{"array", "/orders", `[{"customer":"ada"}]`, 400, "JSON object"},
		{"truncated", "/orders", `{"customer":"ada"`, 400, "malformed JSON"},
		{"unknown field", "/orders", `{"customer":"ada","vip":true}`, 400, `unknown field \"vip\"`},
		{"no customer", "/orders", `{}`, 400, `\"customer\" is required`},
		{"blank customer", "/orders", `{"customer":"  "}`, 400, `\"customer\" is required`},
		{"null customer", "/orders", `{"customer":null}`, 400, `\"customer\" is required`},
		{"customer not a string", "/orders", `{"customer":5}`, 400, `\"customer\" must be a string`},
		{"id with a slash", "/orders", `{"customer":"ada","id":"a/b"}`, 400, `\"id\"`},
		{"two objects", "/orders", `{"customer":"ada"}{"customer":"bob"}`, 400, "one JSON object"},
		{"body over 64 KiB", "/orders", `{"customer":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "65536 bytes"},
		{"no sku", "/orders/o-1/lines", `{"qty":1}`, 400, `\"sku\" is required`},
		{"blank sku", "/orders/o-1/lines", `{"sku":"","qty":1}`, 400, `\"sku\" is required`},
		{"no qty", "/orders/o-1/lines", `{"sku":"A-1"}`, 400, `\"qty\"`},
		{"qty 0", "/orders/o-1/lines", `{"sku":"A-1","qty":0}`, 400, `\"qty\"`},
		{"negative qty", "/orders/o-1/lines", `{"sku":"A-1","qty":-3}`, 400, `\"qty\"`},
		{"fractional qty", "/orders/o-1/lines", `{"sku":"A-1","qty":1.5}`, 400, `\"qty\" must be an integer`},
		{"qty as string", "/orders/o-1/lines", `{"sku":"A-1","qty":"2"}`, 400, `\"qty\" must be an integer`},
		{"line unknown field", "/orders/o-1/lines", `{"sku":"A-1","qty":1,"price":3}`, 400, `unknown field \"price\"`},
		{"unknown order", "/orders/o-2/lines", `{"sku":"A-1","qty":1}`, 404, `order \"o-2\" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := s.post(t, tc.path, tc.body)
			var resp struct{ Error string }
			if status != tc.status || !strings.Contains(string(body), tc.wantErr) {
				t.Fatalf("POST %s %.60s: %d %s, want %d with %s", tc.path, tc.body, status, body, tc.status, tc.wantErr)
			}
			decodeBody(t, body, &resp)
			if resp.Error == "" {
				t.Fatalf("no error field in %s", body)
			}
		})
	}
	if after := tables(); after != before {
		t.Fatalf("rows in orders, order_lines, outbox_events went from %v to %v", before, after)
	}
	if status, body := s.post(t, "/orders/o-1/lines", `{"sku":"A-1","qty":1}`); status != http.StatusCreated {
		t.Fatalf("valid line after the invalid ones: %d %s", status, body)
	}
}

// The Relay publishes in transaction id order (then insertion order): the
// lines of an order written concurrently must have transaction ids in line
// order, or line 5 can reach Kafka before line 4. PostgreSQL gives a
// waiter for a row lock its transaction id while it still waits, if it
// follows the row's update chain, and the waiters then get the lock in any
// order: so the service serialises on an advisory lock first, which takes
// no transaction id (ADR 0034).
func TestConcurrentLinesGoOutInLineOrder(t *testing.T) {
	t.Parallel()
	s := startService(t, testenv.MigratedPostgres(t), nil)
	const orders, lines = 30, 8
	var wg sync.WaitGroup
	for o := range orders {
		id := fmt.Sprintf("o-%d", o)
		if status, body := s.post(t, "/orders", `{"id":"`+id+`","customer":"ada"}`); status != http.StatusCreated {
			t.Fatalf("POST /orders: %d %s", status, body)
		}
		for range lines {
			wg.Go(func() {
				if status, body := s.post(t, "/orders/"+id+"/lines", `{"sku":"sku","qty":1}`); status != http.StatusCreated {
					t.Errorf("POST line of %s: %d %s", id, status, body)
				}
			})
		}
	}
	wg.Wait()
	rows, err := s.db.Pool.Query(context.Background(), `SELECT aggregate_id, (payload->'data'->>'lineNo')::int, transaction_id::text
		FROM outbox_events WHERE event_type = 'sales.order.line-added' ORDER BY transaction_id, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	last := map[string]int{}
	inversions := 0
	for rows.Next() {
		var order, xid string
		var line int
		if err := rows.Scan(&order, &line, &xid); err != nil {
			t.Fatal(err)
		}
		if line != last[order]+1 {
			if inversions++; inversions <= 3 {
				t.Errorf("order %s: line %d (transaction %s) goes out after line %d", order, line, xid, last[order])
			}
		}
		last[order] = max(last[order], line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if inversions > 0 {
		t.Errorf("%d lines of %d go out of line order", inversions, orders*lines)
	}
}
