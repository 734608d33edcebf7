package outbox

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// NotifyChannel is the PostgreSQL channel that the outbox_events insert
// trigger (migration 00002) notifies at each commit that added rows.
const NotifyChannel = "messagekit_outbox"

// Defaults of [RelayConfig].
const (
	// DefaultTopic is the topic records go to (DESIGN.md §5, OUTBOX_TOPIC).
	DefaultTopic = "events"
	// DefaultBatchSize is how many rows one batch reads at most.
	DefaultBatchSize = 1000
	// DefaultPollInterval is how long the active Relay waits for a
	// notification before it looks anyway.
	DefaultPollInterval = time.Second
	// DefaultTakeoverInterval is how often a standby Relay tries to take
	// the lease.
	DefaultTakeoverInterval = time.Second
	// DefaultLeaseName names the advisory lock that elects the active Relay.
	DefaultLeaseName = "messagekit_outbox_relay"
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// retries after a Kafka or database error; it doubles on each failure.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	// DefaultStatsInterval is how often the active Relay refreshes its
	// pending gauges.
	DefaultStatsInterval = 10 * time.Second
)

// ErrRelayClosed is returned by [Relay.Run] after [Relay.Close].
var ErrRelayClosed = errors.New("outbox: relay closed")

// Pool gives the Relay its connections: one it keeps while it holds the
// lease (for the lease, LISTEN and reading rows), and one at a time for
// moments, to mark rows while the next batch is on its way to Kafka.
// *pgxpool.Pool satisfies it.
type Pool interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// RelayConfig configures a [Relay]. Zero values mean the defaults above.
type RelayConfig struct {
	// Topic receives every record. Default [DefaultTopic].
	Topic string
	// BatchSize is how many pending rows one batch reads. Default
	// [DefaultBatchSize].
	BatchSize int
	// PollInterval is how long the active Relay waits for a notification
	// before it looks for rows anyway (rows written while the trigger is
	// disabled, or by a transaction that ended without notifying). Default
	// [DefaultPollInterval].
	PollInterval time.Duration
	// TakeoverInterval is how often a standby tries to take the lease, so
	// it bounds how long publishing pauses after the active Relay's session
	// ends. Default [DefaultTakeoverInterval].
	TakeoverInterval time.Duration
	// LeaseName identifies the group of Relays of which one is active: they
	// share an advisory lock whose key is [LeaseKey](LeaseName). Relays of
	// different outbox databases never compete (advisory locks are per
	// database). Default [DefaultLeaseName].
	LeaseName string
	// MinBackoff and MaxBackoff bound the wait after a failed batch or a lost
	// connection. Defaults [DefaultMinBackoff], [DefaultMaxBackoff].
	MinBackoff, MaxBackoff time.Duration
	// StatsInterval is how often the active Relay refreshes
	// messagekit_outbox_pending_events and
	// messagekit_outbox_oldest_pending_age_seconds. Default
	// [DefaultStatsInterval].
	StatsInterval time.Duration
	// Logger receives the Relay's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the Relay's metrics. Nil means no metrics.
	Registerer prometheus.Registerer
}

var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (c RelayConfig) withDefaults() (RelayConfig, error) {
	set := func(d *time.Duration, def time.Duration, name string) error {
		switch {
		case *d < 0:
			return fmt.Errorf("outbox: RelayConfig.%s is negative (%v)", name, *d)
		case *d == 0:
			*d = def
		}
		return nil
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if !topicRE.MatchString(c.Topic) || c.Topic == "." || c.Topic == ".." {
		return c, fmt.Errorf("outbox: RelayConfig.Topic %q is not a valid Kafka topic name", c.Topic)
	}
	switch {
	case c.BatchSize < 0:
		return c, fmt.Errorf("outbox: RelayConfig.BatchSize is negative (%d)", c.BatchSize)
	case c.BatchSize == 0:
		c.BatchSize = DefaultBatchSize
	}
	if c.LeaseName == "" {
		c.LeaseName = DefaultLeaseName
	}
	if err := errors.Join(
		set(&c.PollInterval, DefaultPollInterval, "PollInterval"),
		set(&c.TakeoverInterval, DefaultTakeoverInterval, "TakeoverInterval"),
		set(&c.MinBackoff, DefaultMinBackoff, "MinBackoff"),
		set(&c.MaxBackoff, DefaultMaxBackoff, "MaxBackoff"),
		set(&c.StatsInterval, DefaultStatsInterval, "StatsInterval"),
	); err != nil {
		return c, err
	}
	if c.MaxBackoff < c.MinBackoff {
		return c, fmt.Errorf("outbox: RelayConfig.MaxBackoff (%v) is below MinBackoff (%v)", c.MaxBackoff, c.MinBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

// LeaseKey returns the advisory lock key of a lease name: the FNV-1a 64-bit
// hash of name, as a bigint. The active Relay holds
// pg_advisory_lock(LeaseKey(name)) for as long as its session lives; in
// pg_locks it shows as locktype advisory, classid = key>>32, objid = the low
// 32 bits, objsubid 1.
func LeaseKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name)) // never fails
	return int64(h.Sum64())
}

// Relay publishes pending outbox rows to Kafka, for deployments without
// Debezium. It writes each row as one record in the format of DESIGN.md §3
// (key aggregateId, value the payload column, headers id, eventType,
// aggregateType and the stored trace context) and marks it published.
//
// Ordering: a Relay reads only rows whose writing transaction is older than
// every transaction of its database still running (transaction_id below
// pg_snapshot_xmin(pg_current_snapshot()), disregarding transactions that
// pg_stat_activity places in other databases), in (transaction_id, id)
// order, so a transaction that commits late can not let a later event
// overtake an earlier one. Records with the same key are sent one at a time: the next
// only after Kafka acknowledged the previous, so a failed record is never
// overtaken by a later one of its aggregate, whatever the producer does on
// retries.
//
// Instances: any number of Relays may run against one database. One, the
// holder of a session-level advisory lock, publishes; the others wait and
// take over within TakeoverInterval when its session ends.
//
// Waking: the active Relay LISTENs on [NotifyChannel], which the outbox's
// insert trigger notifies at every commit that added rows, and polls every
// PollInterval as a fallback. PostgreSQL serialises the commits of
// notifying transactions (cluster-wide, through their WAL flush), which
// caps concurrent outbox writers near one commit per fsync. Where that
// matters — and always with Debezium, which needs no wake-up — disable the
// trigger (ALTER TABLE outbox_events DISABLE TRIGGER outbox_events_notify)
// and give the Relay a short PollInterval (10–50 ms: an idle look is two
// index probes).
//
// Failures: on Kafka errors rows stay pending (attempt_count counts each
// attempt) and the Relay retries with capped exponential backoff; a record
// the Publisher reports as permanently unpublishable marks its row failed
// (failed, failed_at, error_message) and is skipped. Losing the database
// connection mid-batch re-publishes that batch later: delivery is at least
// once, consumers dedup by event id.
//
// Create it with [NewRelay], run it with [Relay.Run], stop it by cancelling
// Run's context or with [Relay.Close]. Its methods are safe for concurrent
// use.
type Relay struct {
	pool    Pool
	pub     Publisher
	cfg     RelayConfig
	log     *slog.Logger
	metrics *relayMetrics
	lockKey int64

	mu      sync.Mutex
	closed  bool
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewRelay returns a Relay that takes its connection from pool and writes
// with pub. It returns an error naming the field when cfg is invalid, or
// when registering the metrics fails for another reason than an identical
// collector already being registered.
func NewRelay(pool Pool, pub Publisher, cfg RelayConfig) (*Relay, error) {
	if pool == nil || pub == nil {
		return nil, errors.New("outbox: NewRelay needs a pool and a publisher")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newRelayMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Relay{
		pool: pool, pub: pub, cfg: cfg, metrics: m,
		log:     cfg.Logger.With(slog.String("component", "outbox-relay"), slog.String("topic", cfg.Topic)),
		lockKey: LeaseKey(cfg.LeaseName),
	}, nil
}

// Run relays until ctx ends or [Relay.Close] is called, then returns nil
// after the batch in flight is marked (an interrupted Kafka write leaves its
// rows pending). Database and Kafka errors are logged and retried, never
// returned. It returns [ErrRelayClosed] after Close, and an error if Run is
// already running.
func (r *Relay) Run(ctx context.Context) error {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrRelayClosed
	case r.running:
		r.mu.Unlock()
		return errors.New("outbox: Relay.Run is already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel, r.running, r.done = cancel, true, make(chan struct{})
	r.mu.Unlock()
	defer func() {
		cancel()
		r.mu.Lock()
		r.running = false
		close(r.done)
		r.mu.Unlock()
	}()

	bo := backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	standby := false
	for ctx.Err() == nil {
		led, err := r.lead(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			wait := bo.next()
			r.log.WarnContext(ctx, "outbox relay: database error, retrying", slog.Any("error", err), slog.Duration("backoff", wait))
			sleep(ctx, wait)
		case !led:
			if !standby {
				r.log.InfoContext(ctx, "outbox relay: standby, another instance holds the lease", slog.String("lease", r.cfg.LeaseName))
				standby = true
			}
			bo.reset()
			sleep(ctx, r.cfg.TakeoverInterval)
		default:
			bo.reset()
			standby = false
		}
	}
	return nil
}

// Close stops Run and waits for it to return; Run's connection is closed,
// which releases the lease. It does not close the Publisher. Close is
// idempotent and always returns nil.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	running, cancel, done := r.running, r.cancel, r.done
	r.mu.Unlock()
	if running {
		cancel()
		<-done
	}
	return nil
}

// lead tries to take the lease and, if it gets it, relays until ctx ends or
// the connection fails. It reports whether it held the lease.
func (r *Relay) lead(ctx context.Context) (bool, error) {
	pc, err := r.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire connection: %w", err)
	}
	var got bool
	if err := pc.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", r.lockKey).Scan(&got); err != nil {
		pc.Release()
		return false, fmt.Errorf("take lease: %w", err)
	}
	if !got {
		pc.Release()
		return false, nil
	}
	// The lease lives as long as this session: the connection is ours now.
	conn := pc.Hijack()
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	r.metrics.leader.Set(1)
	defer r.metrics.leader.Set(0)
	r.log.InfoContext(ctx, "outbox relay: active", slog.String("lease", r.cfg.LeaseName), slog.Uint64("pid", uint64(conn.PgConn().PID())))
	return true, r.relay(ctx, conn)
}

// relay is the active Relay's loop on its own connection. While Kafka takes
// one batch, the previous batch's rows are marked on a second connection
// from the pool; the next batch then starts after the last row of the
// previous one, whose rows may not be marked yet.
func (r *Relay) relay(ctx context.Context, conn *pgx.Conn) (err error) {
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var marking *markJob // at most one in flight
	finish := func() error {
		if marking == nil {
			return nil
		}
		err := marking.wait()
		marking = nil
		return err
	}
	defer func() { err = errors.Join(err, finish()) }()

	bo := backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	var lastStats time.Time
	var heldWait time.Duration
	var after *rowKey
	for {
		drainNotifications(conn)
		rows, err := r.fetch(ctx, conn, after)
		if err != nil {
			return err
		}
		var res batchResult
		if len(rows) > 0 {
			res = r.publish(ctx, rows)
		}
		if err := finish(); err != nil {
			return err
		}
		if len(rows) > 0 {
			marking = r.mark(ctx, rows, res)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case res.retry > 0:
			// Start again from the first pending row, after backoff.
			if err := finish(); err != nil {
				return err
			}
			after = nil
			sleep(ctx, bo.next())
			continue
		case len(rows) == r.cfg.BatchSize:
			bo.reset()
			after = &rowKey{txid: rows[len(rows)-1].txid, id: rows[len(rows)-1].id}
			continue
		}
		bo.reset()
		// Idle: no need to wait for the mark. Until it is done the next
		// batch starts after this one; then from the first pending row
		// again (rows an operator reset to pending are seen there).
		if marking != nil && marking.isDone() {
			if err := finish(); err != nil {
				return err
			}
		}
		if marking == nil {
			after = nil
		} else if len(rows) > 0 {
			after = &rowKey{txid: rows[len(rows)-1].txid, id: rows[len(rows)-1].id}
		}
		if time.Since(lastStats) >= r.cfg.StatsInterval {
			if err := r.refreshGauges(ctx, conn); err != nil {
				return err
			}
			lastStats = time.Now()
		}
		// Rows committed but behind the horizon (a transaction with an
		// older id, perhaps in another database, is still running) get no
		// notification of their own when it ends: look again soon, backing
		// off to maxHeldBackWait while committed rows remain.
		wait := r.cfg.PollInterval
		held, err := r.pendingLeft(ctx, conn, after)
		if err != nil {
			return err
		}
		if held {
			heldWait = min(max(2*heldWait, minHeldBackWait), maxHeldBackWait, r.cfg.PollInterval)
			wait = heldWait
		} else {
			heldWait = 0
		}
		// A mark still in flight ends the wait too: its failure must be
		// acted on now, not at the next notification.
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		if marking != nil {
			go func(done <-chan struct{}) {
				select {
				case <-done:
					cancel()
				case <-waitCtx.Done():
				}
			}(marking.done)
		}
		_, err = conn.WaitForNotification(waitCtx)
		interrupted := waitCtx.Err() != nil // deadline, or the mark ended
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !interrupted:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// minHeldBackWait and maxHeldBackWait bound the wait while committed rows
// are held back by the horizon (never longer than PollInterval). A look is
// two index probes: cheap even while a long transaction lasts.
const (
	minHeldBackWait = 5 * time.Millisecond
	maxHeldBackWait = 50 * time.Millisecond
)

// selectPendingLeft and selectPendingLeftAfter look for committed pending
// rows a batch did not take: held back by the horizon, or eligible since.
// They read the first such row in publish order, which keeps them on the
// pending index (EXISTS lets the planner pick a sequential scan, which reads
// every published row before the pending ones at the table's end).
const (
	selectPendingLeft = `SELECT id FROM outbox_events
	WHERE NOT published AND NOT failed
	ORDER BY transaction_id, id LIMIT 1`
	selectPendingLeftAfter = `SELECT id FROM outbox_events
	WHERE NOT published AND NOT failed
	  AND (transaction_id, id) > ($1::xid8, $2::bigint)
	ORDER BY transaction_id, id LIMIT 1`
)

// pendingLeft reports whether committed pending rows remain beyond after
// (rows up to after are being marked).
func (r *Relay) pendingLeft(ctx context.Context, conn *pgx.Conn, after *rowKey) (bool, error) {
	var row pgx.Row
	if after == nil {
		row = conn.QueryRow(ctx, selectPendingLeft)
	} else {
		row = conn.QueryRow(ctx, selectPendingLeftAfter, after.txid, after.id)
	}
	var id int64
	switch err := row.Scan(&id); {
	case err == nil:
		return true, nil
	case errors.Is(err, pgx.ErrNoRows), ctx.Err() != nil:
		return false, nil
	default:
		return false, fmt.Errorf("look for pending rows: %w", err)
	}
}

// drainNotifications drops notifications already received: the next batch
// sees their rows.
func drainNotifications(conn *pgx.Conn) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		if n, _ := conn.WaitForNotification(done); n == nil {
			return
		}
	}
}
