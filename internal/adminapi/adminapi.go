package adminapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

// MaxBodyBytes bounds a request body; a larger one is answered 413.
const MaxBodyBytes = 1 << 20

// DefaultClaimTimeout is Config.ClaimTimeout's default: far longer than a
// page of replays takes to publish and be confirmed.
const DefaultClaimTimeout = 5 * time.Minute

// DefaultMaxBulkOperations is Config.MaxBulkOperations's default.
const DefaultMaxBulkOperations = 2

// DefaultService is Config.Service's default.
const DefaultService = "messagekit-admin-api"

// DeadLetterStore is what the API needs of the dead-letter store;
// *deadletter.Store satisfies it.
type DeadLetterStore interface {
	List(ctx context.Context, f deadletter.Filter) (deadletter.Page, error)
	Get(ctx context.Context, id int64) (deadletter.Item, error)
	Summary(ctx context.Context, f deadletter.Filter, groupBy string) ([]deadletter.Group, error)
	MarkDiscarded(ctx context.Context, id int64, reason string) (deadletter.Item, error)
	DiscardPage(ctx context.Context, f deadletter.Filter, limit int, reason string) ([]int64, error)
	CountPending(ctx context.Context, f deadletter.Filter, limit int) (int, error)
	Destinations(ctx context.Context, f deadletter.Filter) ([][2]string, error)
	Claim(ctx context.Context, id int64, claimID uuid.UUID) (deadletter.Item, error)
	ClaimPage(ctx context.Context, f deadletter.Filter, claimID uuid.UUID, limit int, maxBytes int64) ([]deadletter.Item, string, error)
	FinishReplay(ctx context.Context, ids []int64, claimID uuid.UUID) ([]int64, error)
	Release(ctx context.Context, ids []int64, claimID uuid.UUID) ([]int64, error)
	ReleaseStale(ctx context.Context, olderThan time.Duration) ([]int64, error)
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
	// Token is ADMIN_TOKEN, the bearer token of the principal "admin".
	// With neither Token nor Tokens, /api/v1 is disabled: every route but
	// GET /api/v1/openapi.json answers 503.
	Token string
	// Tokens is ADMIN_TOKENS: principal name to token, the token plaintext
	// (at least MinTokenBytes) or "sha256:" and its SHA-256 in hex. The
	// principal is recorded in admin_actions.
	Tokens map[string]string
	// ReplayDestinations are ADMIN_REPLAY_DESTINATIONS, path.Match patterns
	// of the queues and topics a replay may publish to ("*" alone matches
	// every name); nil means every destination.
	ReplayDestinations []string
	// ClaimTimeout is how long a replay may hold its claim on a dead letter
	// before it is released as stale; zero means DefaultClaimTimeout.
	ClaimTimeout time.Duration
	// MaxBulkOperations bounds the bulk operations (bulk replay, bulk
	// discard, outbox replay) running at once; more answer 429. Zero means
	// DefaultMaxBulkOperations.
	MaxBulkOperations int
	// ReadOpen lets GET requests under /api/v1 through without the token
	// (when a token is configured).
	ReadOpen bool
	// SlotName is the Debezium replication slot; empty means the Relay
	// publishes the outbox (see outbox.StatsOptions).
	SlotName string
	// OutboxHealth are the thresholds of /health and /health/outbox.
	OutboxHealth HealthThresholds
	// StatsCacheTTL is how long /outbox/stats and the health routes reuse
	// the outbox figures they read; zero means DefaultStatsCacheTTL, a
	// negative value reads them on every request.
	StatsCacheTTL time.Duration
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
	router       chi.Router
	dl           DeadLetterStore
	db           Querier
	principals   []principal
	destinations []string
	claimTimeout time.Duration
	bulk         chan struct{}
	readOpen     bool
	thresholds   HealthThresholds
	cursorKey    []byte
	// afterClaim, when set (by tests), runs between claim and publish.
	afterClaim func()
	stats      *statsCache
	service    string
	logger     *slog.Logger
	metrics    *Metrics
	queues     QueuePublisher
	kafka      outbox.Publisher
	topic      string
	catalog    CatalogSource
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
		dl: cfg.DeadLetters, db: cfg.DB, readOpen: cfg.ReadOpen, destinations: cfg.ReplayDestinations,
		claimTimeout: cfg.ClaimTimeout, thresholds: cfg.OutboxHealth.withDefaults(),
		stats:   &statsCache{ttl: cfg.StatsCacheTTL, slot: cfg.SlotName},
		service: cfg.Service, logger: cfg.Logger, metrics: cfg.Metrics,
		queues: cfg.Queues, kafka: cfg.Kafka, topic: cfg.OutboxTopic, catalog: cfg.Catalog,
	}
	var err error
	if h.principals, err = principals(cfg); err != nil {
		return nil, err
	}
	h.cursorKey = cursorKey(h.principals)
	for _, p := range h.destinations {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("adminapi: replay destination pattern %q: %w", p, err)
		}
		if p == "*" {
			h.destinations = nil // every destination: no check needed
			break
		}
	}
	if h.stats.ttl == 0 {
		h.stats.ttl = DefaultStatsCacheTTL
	}
	if h.claimTimeout <= 0 {
		h.claimTimeout = DefaultClaimTimeout
	}
	n := cfg.MaxBulkOperations
	if n <= 0 {
		n = DefaultMaxBulkOperations
	}
	h.bulk = make(chan struct{}, n)
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
	r.Use(h.recoverPanic, requestID, middleware.GetHead, limitBody)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		var allowed []string
		if r.Match(chi.NewRouteContext(), http.MethodGet, req.URL.Path) {
			allowed = append(allowed, http.MethodGet, http.MethodHead)
		}
		if r.Match(chi.NewRouteContext(), http.MethodPost, req.URL.Path) {
			allowed = append(allowed, http.MethodPost)
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method "+req.Method+" not allowed on "+req.URL.Path+
			"; allowed: "+strings.Join(allowed, ", "))
	})

	r.Get("/health", h.health)
	r.Get("/health/outbox", h.healthOutbox)
	r.Get("/api/v1/openapi.json", serveOpenAPI)
	r.Group(func(r chi.Router) {
		r.Use(h.authorize)
		r.Get("/api/v1/dead-letters", h.listDeadLetters)
		r.Get("/api/v1/dead-letters/summary", h.summarizeDeadLetters)
		r.Get("/api/v1/dead-letters/{id}", h.getDeadLetter)
		r.Post("/api/v1/dead-letters/{id}/discard", h.audited(ActionDiscardDeadLetter, h.discardDeadLetter))
		r.Post("/api/v1/dead-letters/{id}/replay", h.audited(ActionReplayDeadLetter, h.replayDeadLetter))
		r.Post("/api/v1/dead-letters/replay", h.audited(ActionReplayDeadLetters, h.replayDeadLetters))
		r.Post("/api/v1/dead-letters/discard", h.audited(ActionDiscardDeadLetters, h.discardDeadLetters))
		r.Get("/api/v1/outbox/stats", h.outboxStats)
		r.Get("/api/v1/dlq", h.listFailed)
		r.Post("/api/v1/dlq/{event_id}/retry", h.audited(ActionDLQRetry, h.retryFailed))
		r.Get("/api/v1/replay", h.previewReplay)
		r.Post("/api/v1/replay", h.audited(ActionReplayOutbox, h.replayOutbox))
		r.Get("/api/v1/catalog", h.getCatalog)
	})
	return r
}

// requestID takes the request's X-Request-Id, or makes one up, and
// answers it in the response's X-Request-Id: the audit and the access log
// name it.
func requestID(next http.Handler) http.Handler {
	return middleware.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(middleware.RequestIDHeader, middleware.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	}))
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
