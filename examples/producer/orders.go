package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// Input limits. Order ids go into URLs and Kafka keys, so they are kept to
// a safe alphabet.
var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

const (
	maxCustomerLen = 200
	maxSKULen      = 100
	maxQty         = 1_000_000
)

// errOrderNotFound ends a transaction that found no order to add a line to.
var errOrderNotFound = errors.New("order not found")

// orders serves the order API. Every write is one transaction that changes
// the business tables and adds the event to the outbox: both commit, or
// neither does, so no event is ever lost or published for a rolled-back
// change.
type orders struct {
	pool   *pgxpool.Pool
	outbox outbox.Writer // the zero Writer is ready to use
	log    *slog.Logger

	ordersCreated prometheus.Counter
	linesAdded    prometheus.Counter
}

func newOrders(pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) *orders {
	o := &orders{
		pool: pool,
		log:  log,
		ordersCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sales_orders_created_total", Help: "Orders created (with their sales.order.created event).",
		}),
		linesAdded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sales_order_lines_added_total", Help: "Order lines added (with their sales.order.line-added event).",
		}),
	}
	reg.MustRegister(o.ordersCreated, o.linesAdded)
	return o
}

type createOrderRequest struct {
	ID       string `json:"id"` // optional: a UUID is generated when empty
	Customer string `json:"customer"`
}

type createOrderResponse struct {
	ID      string `json:"id"`
	EventID string `json:"eventId"`
}

// create handles POST /orders.
func (o *orders) create(w http.ResponseWriter, r *http.Request) {
	var req createOrderRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.Customer = strings.TrimSpace(req.Customer)
	switch {
	case req.Customer == "":
		writeError(w, http.StatusBadRequest, `"customer" is required`)
		return
	case len(req.Customer) > maxCustomerLen:
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"customer" is longer than %d bytes`, maxCustomerLen))
		return
	case req.ID != "" && !orderIDPattern.MatchString(req.ID):
		writeError(w, http.StatusBadRequest, `"id" must be 1-128 letters, digits, '.', '_', ':' or '-'`)
		return
	}
	if req.ID == "" {
		id, err := uuid.NewV7() // time-ordered: friendlier to the primary key index than v4
		if err != nil {
			o.fail(w, r, err)
			return
		}
		req.ID = id.String()
	}

	ctx := r.Context()
	var event contracts.Envelope
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO orders (id, customer) VALUES ($1, $2)", req.ID, req.Customer); err != nil {
			return err
		}
		var err error
		event, err = orderCreated.New(req.ID, eventSource, OrderCreated{OrderID: req.ID, Customer: req.Customer})
		if err != nil {
			return err
		}
		return o.outbox.Add(ctx, tx, event) // same tx: the event commits with the order
	})
	switch {
	case isUniqueViolation(err, "orders_pkey"):
		writeError(w, http.StatusConflict, fmt.Sprintf("order %q already exists", req.ID))
	case err != nil:
		o.fail(w, r, err)
	default:
		o.ordersCreated.Inc()
		o.log.InfoContext(ctx, "order created", "order_id", req.ID, "event_id", event.EventID)
		writeJSON(w, http.StatusCreated, createOrderResponse{ID: req.ID, EventID: event.EventID.String()})
	}
}

type addLineRequest struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type addLineResponse struct {
	OrderID string `json:"orderId"`
	LineNo  int    `json:"lineNo"`
	EventID string `json:"eventId"`
}

// addLine handles POST /orders/{id}/lines.
func (o *orders) addLine(w http.ResponseWriter, r *http.Request) {
	orderID := r.PathValue("id")
	var req addLineRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	req.SKU = strings.TrimSpace(req.SKU)
	switch {
	case req.SKU == "":
		writeError(w, http.StatusBadRequest, `"sku" is required`)
		return
	case len(req.SKU) > maxSKULen:
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"sku" is longer than %d bytes`, maxSKULen))
		return
	case req.Qty < 1 || req.Qty > maxQty:
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`"qty" must be between 1 and %d`, maxQty))
		return
	case !orderIDPattern.MatchString(orderID):
		writeError(w, http.StatusNotFound, fmt.Sprintf("order %q not found", orderID))
		return
	}

	ctx := r.Context()
	var event contracts.Envelope
	var lineNo int
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		// Concurrent requests for one order queue on an advisory lock of
		// the order first, then each reads the line_count the previous one
		// wrote. The Relay publishes in transaction id order (package
		// outbox, "Order"), so a transaction must get its id only once it
		// holds the order: an advisory lock is waited for without one,
		// whereas PostgreSQL may give a waiter for the row lock alone its
		// id while it waits (when it follows the row's update chain) and
		// hand the lock to the waiters in any order, which sent line 5 to
		// Kafka before line 4 (ADR 0034).
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('orders/' || $1, 0))", orderID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, "SELECT line_count + 1 FROM orders WHERE id = $1 FOR UPDATE", orderID).Scan(&lineNo)
		if errors.Is(err, pgx.ErrNoRows) {
			return errOrderNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO order_lines (order_id, line_no, sku, qty) VALUES ($1, $2, $3, $4)",
			orderID, lineNo, req.SKU, req.Qty); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE orders SET line_count = $2 WHERE id = $1", orderID, lineNo); err != nil {
			return err
		}
		event, err = orderLineAdded.New(orderID, eventSource,
			OrderLineAdded{OrderID: orderID, LineNo: lineNo, SKU: req.SKU, Qty: req.Qty})
		if err != nil {
			return err
		}
		return o.outbox.Add(ctx, tx, event)
	})
	switch {
	case errors.Is(err, errOrderNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("order %q not found", orderID))
	case err != nil:
		o.fail(w, r, err)
	default:
		o.linesAdded.Inc()
		o.log.InfoContext(ctx, "order line added", "order_id", orderID, "line_no", lineNo, "event_id", event.EventID)
		writeJSON(w, http.StatusCreated, addLineResponse{OrderID: orderID, LineNo: lineNo, EventID: event.EventID.String()})
	}
}

// fail answers 500 without leaking the cause, which goes to the log.
func (o *orders) fail(w http.ResponseWriter, r *http.Request, err error) {
	o.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}
