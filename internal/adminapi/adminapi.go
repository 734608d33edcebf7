package adminapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// MaxBodyBytes bounds a request body; a larger one is answered 413.
const MaxBodyBytes = 1 << 20

// DefaultService is Config.Service's default.
const DefaultService = "messagekit-admin-api"

// DeadLetterStore is what the API needs of the dead-letter store;
// *deadletter.Store satisfies it.
type DeadLetterStore interface {
	List(ctx context.Context, f deadletter.Filter) (deadletter.Page, error)
	Get(ctx context.Context, id int64) (deadletter.Item, error)
	MarkDiscarded(ctx context.Context, id int64, reason string) (deadletter.Item, error)
	MarkReplayed(ctx context.Context, id int64) (deadletter.Item, error)
	MarkManyReplayed(ctx context.Context, ids []int64) ([]int64, error)
	GetMany(ctx context.Context, ids []int64) ([]deadletter.Item, error)
	PendingByEvent(ctx context.Context, eventID uuid.UUID) ([]deadletter.Item, error)
}

// Querier runs the outbox queries; *pgxpool.Pool satisfies it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config configures [New]. DeadLetters and DB are required; every other
// zero value is a documented default.
type Config struct {
	// DeadLetters reads and updates dead_letters.
	DeadLetters DeadLetterStore
	// DB reads outbox_events (GET /dlq, /outbox/stats, /health).
	DB Querier
	// Token is the bearer token /api/v1 requires. Empty disables /api/v1:
	// every route but GET /api/v1/openapi.json answers 503.
	Token string
	// ReadOpen lets GET requests under /api/v1 through without the token
	// (when a token is configured).
	ReadOpen bool
	// SlotName is the Debezium replication slot; empty means the Relay
	// publishes the outbox (see outbox.StatsOptions).
	SlotName string
	// Service is the name /health reports; empty means DefaultService.
	Service string
	// Logger logs requests that fail with a 5xx; nil discards.
	Logger *slog.Logger
	// Metrics counts requests and replays; nil means no metrics.
	Metrics *Metrics
	// Queues publishes replayed RabbitMQ dead letters (an *AMQPPublisher);
	// nil: replaying one answers 503.
	Queues QueuePublisher
	// Kafka writes replayed Kafka dead letters and outbox replays (an
	// *outboxsarama.Publisher, whose murmur2 partitioner puts a replayed
	// event on its original partition); nil: those replays answer 503.
	Kafka outbox.Publisher
	// OutboxTopic is where POST /replay writes; empty means
	// DefaultOutboxTopic.
	OutboxTopic string
	// Catalog serves GET /api/v1/catalog; nil: it answers 404.
	Catalog CatalogSource
}

// Handler serves the admin API. It is safe for concurrent use.
type Handler struct {
	router   chi.Router
	dl       DeadLetterStore
	db       Querier
	token    []byte
	readOpen bool
	slot     string
	service  string
	logger   *slog.Logger
	metrics  *Metrics
	queues   QueuePublisher
	kafka    outbox.Publisher
	topic    string
	catalog  CatalogSource
}

// New returns the Handler described by cfg. It returns an error when
// DeadLetters or DB is nil.
func New(cfg Config) (*Handler, error) {
	if cfg.DeadLetters == nil {
		return nil, errors.New("adminapi: nil DeadLetters")
	}
	if cfg.DB == nil {
		return nil, errors.New("adminapi: nil DB")
	}
	h := &Handler{
		dl: cfg.DeadLetters, db: cfg.DB, token: []byte(cfg.Token), readOpen: cfg.ReadOpen,
		slot: cfg.SlotName, service: cfg.Service, logger: cfg.Logger, metrics: cfg.Metrics,
		queues: cfg.Queues, kafka: cfg.Kafka, topic: cfg.OutboxTopic, catalog: cfg.Catalog,
	}
	if h.topic == "" {
		h.topic = DefaultOutboxTopic
	}
	if h.service == "" {
		h.service = DefaultService
	}
	if h.logger == nil {
		h.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h.router = h.routes(cfg.Metrics)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

// Routes returns the router, for walking its routes (chi.Walk).
func (h *Handler) Routes() chi.Routes { return h.router }

func (h *Handler) routes(m *Metrics) chi.Router {
	r := chi.NewRouter()
	if m != nil {
		r.Use(m.middleware)
	}
	r.Use(h.recoverPanic, limitBody)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})

	r.Get("/health", h.health)
	r.Get("/health/outbox", h.healthOutbox)
	r.Get("/api/v1/openapi.json", serveOpenAPI)
	r.Group(func(r chi.Router) {
		r.Use(h.authorize)
		r.Get("/api/v1/dead-letters", h.listDeadLetters)
		r.Get("/api/v1/dead-letters/{id}", h.getDeadLetter)
		r.Post("/api/v1/dead-letters/{id}/discard", h.discardDeadLetter)
		r.Post("/api/v1/dead-letters/{id}/replay", h.replayDeadLetter)
		r.Post("/api/v1/dead-letters/replay", h.replayDeadLetters)
		r.Get("/api/v1/outbox/stats", h.outboxStats)
		r.Get("/api/v1/dlq", h.listFailed)
		r.Post("/api/v1/dlq/{event_id}/retry", h.retryFailed)
		r.Get("/api/v1/replay", h.previewReplay)
		r.Post("/api/v1/replay", h.replayOutbox)
		r.Get("/api/v1/catalog", h.getCatalog)
	})
	return r
}

// authorize enforces the bearer token (DESIGN.md §7).
func (h *Handler) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(h.token) == 0 {
			writeError(w, http.StatusServiceUnavailable, "ADMIN_TOKEN is not set: the admin API is disabled")
			return
		}
		if h.readOpen && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="messagekit-admin"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), h.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="messagekit-admin", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanic turns a handler's panic into a logged 500 with a JSON
// error, so the metrics see it and the client gets an answer.
func (h *Handler) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			h.logger.ErrorContext(r.Context(), "admin api handler panicked",
				"method", r.Method, "path", r.URL.Path, "panic", rec, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "internal error, see the server log")
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody answers 413 to a declared oversize body and caps the rest.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "request body larger than 1 MiB")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}
