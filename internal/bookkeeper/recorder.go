package bookkeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Store records dead letters; *deadletter.Store implements it.
type Store interface {
	Record(ctx context.Context, dls []deadletter.DeadLetter) ([]deadletter.Recorded, error)
}

// Defaults of Config.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerTimeout  = 30 * time.Second
	DefaultRetryMin        = 100 * time.Millisecond
	DefaultRetryMax        = 5 * time.Second
	DefaultAttemptTimeout  = 15 * time.Second
)

// Config configures a Recorder. Zero values mean the documented defaults.
type Config struct {
	// Store is where dead letters go. Required.
	Store Store
	// Logger gets one line per dead letter and the store's failures; nil
	// discards.
	Logger *slog.Logger
	// Metrics are updated per batch; nil means metrics registered nowhere.
	Metrics *Metrics
	// BreakerFailures is how many consecutive failed attempts open the
	// breaker; zero means DefaultBreakerFailures.
	BreakerFailures uint32
	// BreakerTimeout is how long the breaker stays open before it lets one
	// probe through; zero means DefaultBreakerTimeout.
	BreakerTimeout time.Duration
	// RetryMin and RetryMax bound the doubling wait between failed attempts
	// while the breaker is closed; zero means DefaultRetryMin and
	// DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// AttemptTimeout bounds one attempt to store a batch; zero means
	// DefaultAttemptTimeout. An attempt that has started is finished (or
	// times out) even when Record's context ends, so that a shutdown does
	// not throw away a commit in flight.
	AttemptTimeout time.Duration
}

// Recorder stores the batches of dead letters its sources hand over,
// through a circuit breaker around PostgreSQL. It is safe for concurrent
// use; concurrent batches run in their own transactions.
type Recorder struct {
	store          Store
	log            *slog.Logger
	metrics        *Metrics
	cb             *gobreaker.CircuitBreaker[[]deadletter.Recorded]
	retryMin       time.Duration
	retryMax       time.Duration
	poll           time.Duration
	attemptTimeout time.Duration
	lastErr        atomic.Pointer[error]
}

// NewRecorder returns a Recorder for cfg, or an error when cfg.Store is nil
// or a duration is negative.
func NewRecorder(cfg Config) (*Recorder, error) {
	if cfg.Store == nil {
		return nil, errors.New("bookkeeper: Config.Store is required")
	}
	if cfg.BreakerTimeout < 0 || cfg.RetryMin < 0 || cfg.RetryMax < 0 || cfg.AttemptTimeout < 0 {
		return nil, errors.New("bookkeeper: negative duration in Config")
	}
	r := &Recorder{
		store:          cfg.Store,
		log:            cfg.Logger,
		metrics:        cfg.Metrics,
		retryMin:       or(cfg.RetryMin, DefaultRetryMin),
		retryMax:       or(cfg.RetryMax, DefaultRetryMax),
		attemptTimeout: or(cfg.AttemptTimeout, DefaultAttemptTimeout),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.metrics == nil {
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return nil, err
		}
		r.metrics = m
	}
	r.retryMax = max(r.retryMax, r.retryMin)
	failures := cfg.BreakerFailures
	if failures == 0 {
		failures = DefaultBreakerFailures
	}
	timeout := or(cfg.BreakerTimeout, DefaultBreakerTimeout)
	// While open, Record polls the breaker this often: a few times per
	// timeout, never busier than every 50ms nor lazier than every second.
	r.poll = min(max(timeout/10, 50*time.Millisecond), time.Second)
	r.cb = gobreaker.NewCircuitBreaker[[]deadletter.Recorded](gobreaker.Settings{
		Name:        "postgres",
		MaxRequests: 1,
		Timeout:     timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// A deadlock or serialization failure between two batches says
		// nothing about the database's health: retry without counting it.
		IsExcluded: func(err error) bool {
			var pgErr *pgconn.PgError
			return errors.As(err, &pgErr) && len(pgErr.Code) >= 2 && pgErr.Code[:2] == "40"
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			r.metrics.setBreaker(to)
			attrs := []any{slog.String("from", from.String()), slog.String("to", to.String())}
			switch {
			case from == gobreaker.StateClosed && to == gobreaker.StateOpen:
				r.log.Warn("postgres circuit breaker open: dead-letter consumption paused",
					append(attrs, slog.Duration("retry_in", timeout), slog.Any("error", r.LastError()))...)
			case to == gobreaker.StateClosed:
				r.log.Info("postgres circuit breaker closed: dead-letter consumption resumed", attrs...)
			default: // probing: every BreakerTimeout while the database stays down
				r.log.Debug("postgres circuit breaker "+to.String(), attrs...)
			}
		},
	})
	r.metrics.setBreaker(gobreaker.StateClosed)
	return r, nil
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Record stores letters from source in one transaction and returns, per
// letter, what was done. It blocks until the batch is committed, retrying
// failed attempts (with doubling waits, and while the breaker is open, by
// polling it), and returns ctx's error, with nothing committed, only when
// ctx ends first; the caller must then leave the messages unacknowledged.
// It also logs each dead letter and updates the metrics.
func (r *Recorder) Record(ctx context.Context, source deadletter.Source, letters []Letter) ([]deadletter.Recorded, error) {
	if len(letters) == 0 {
		return nil, nil
	}
	dls := make([]deadletter.DeadLetter, len(letters))
	for i, l := range letters {
		dls[i] = l.DeadLetter
		dls[i].Source = source
	}
	start := time.Now()
	wait := r.retryMin
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := r.cb.Execute(func() ([]deadletter.Recorded, error) {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.attemptTimeout)
			defer cancel()
			res, err := r.store.Record(actx, dls)
			if err != nil {
				r.lastErr.Store(&err)
			}
			return res, err
		})
		if err == nil {
			r.metrics.batchSize.WithLabelValues(string(source)).Observe(float64(len(letters)))
			r.metrics.storeSeconds.WithLabelValues(string(source)).Observe(time.Since(start).Seconds())
			if failures > 0 {
				r.log.Info("dead letters stored after failed attempts", slog.String("source", string(source)),
					slog.Int("batch", len(letters)), slog.Int("failed_attempts", failures))
			}
			r.report(ctx, source, letters, res)
			return res, nil
		}
		var delay time.Duration
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			delay = r.poll
		} else {
			failures++
			r.metrics.Error(source, ErrorStore)
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			r.log.Log(ctx, level, "storing dead letters failed: nothing acknowledged, retrying",
				slog.String("source", string(source)), slog.Int("batch", len(letters)),
				slog.Int("attempt", failures), slog.Duration("retry_in", wait), slog.Any("error", err))
			delay, wait = wait, min(2*wait, r.retryMax)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// report logs each recorded letter and counts it.
func (r *Recorder) report(ctx context.Context, source deadletter.Source, letters []Letter, res []deadletter.Recorded) {
	src := string(source)
	for i, l := range letters {
		rec := res[i]
		attrs := make([]slog.Attr, 0, 12+len(l.Attrs))
		attrs = append(attrs, slog.String("source", src), slog.String("origin", l.Origin))
		if l.EventID != uuid.Nil {
			attrs = append(attrs, slog.String("event_id", l.EventID.String()))
		}
		attrs = append(attrs, l.Attrs...)
		if rec.Duplicate {
			r.metrics.duplicates.WithLabelValues(src).Inc()
			r.log.LogAttrs(ctx, slog.LevelInfo, "dead letter delivery already recorded: acknowledged without change", attrs...)
			continue
		}
		reason := l.Reason
		if reason == "" || rec.Degraded {
			reason = deadletter.ReasonUnparseable
		}
		r.metrics.recorded.WithLabelValues(src, ReasonLabel(reason)).Inc()
		if rec.OutboxFlagged {
			r.metrics.flagged.WithLabelValues(src).Inc()
		} else if l.EventID != uuid.Nil {
			r.metrics.notInOutbox.WithLabelValues(src).Inc()
		}
		attrs = append(attrs, slog.String("reason", reason), slog.Int64("id", rec.ID),
			slog.Int("death_count", rec.DeathCount), slog.Bool("outbox_found", rec.OutboxFlagged),
			slog.String("status", string(rec.Status)))
		level := slog.LevelInfo
		if l.Problem != nil {
			r.metrics.Error(source, ErrorUnparseable)
			attrs = append(attrs, slog.String("problem", l.Problem.Error()))
			level = slog.LevelWarn
		}
		if rec.Degraded {
			r.metrics.Error(source, ErrorDegraded)
			level = slog.LevelWarn
		}
		msg := "dead letter recorded"
		if l.Problem != nil || rec.Degraded {
			msg = "dead letter stored raw"
		}
		r.log.LogAttrs(ctx, level, msg, attrs...)
	}
}

// State returns the breaker's state.
func (r *Recorder) State() gobreaker.State { return r.cb.State() }

// LastError returns the last error of a failed attempt, or nil.
func (r *Recorder) LastError() error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Check is a readiness check (health.Checker): it fails while the breaker
// is open, naming the last database error.
func (r *Recorder) Check(context.Context) error {
	if r.cb.State() != gobreaker.StateOpen {
		return nil
	}
	const msg = "postgres circuit breaker open, dead-letter consumption paused"
	if err := r.LastError(); err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return errors.New(msg)
}

// Metrics returns the metrics the Recorder updates, for its sources.
func (r *Recorder) Metrics() *Metrics { return r.metrics }
