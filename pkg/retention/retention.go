package retention

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is the default [Config.Interval], PRUNE_INTERVAL's
// default.
const DefaultInterval = 5 * time.Minute

// DefaultLockName names the advisory lock of [Config.LockName]'s default.
const DefaultLockName = "messagekit.retention"

// Table is one table a [Pruner] keeps bounded.
type Table struct {
	// Name names the table in the metrics' table label and the log.
	Name string
	// Prune deletes the table's expired rows in bounded batches, each
	// committed on its own, and returns how many it deleted (also when it
	// fails part-way).
	Prune func(ctx context.Context) (int64, error)
}

// Locker hands out a connection of its own to hold the advisory lock on;
// *pgxpool.Pool satisfies it.
type Locker interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// Config configures a [Pruner]. Tables is required; every other zero value
// means the documented default.
type Config struct {
	// Tables are pruned in order, each run.
	Tables []Table
	// Interval is the time between the starts of two runs; zero means
	// [DefaultInterval]. The first run starts at once.
	Interval time.Duration
	// DB holds the advisory lock that makes one instance across replicas
	// prune at a time; nil means no lock (a single instance).
	DB Locker
	// LockName names the advisory lock: instances with the same name on one
	// database take turns. Empty means [DefaultLockName].
	LockName string
	// Component names the metrics: messagekit_<Component>_pruned_rows_total
	// and so on. Empty means "retention".
	Component string
	// Logger gets one line per run; nil discards.
	Logger *slog.Logger
	// Metrics registers the metrics; nil means none.
	Metrics prometheus.Registerer
}

// Pruner runs the prune functions of its tables every interval. Create it
// with [New]; it is safe for concurrent use.
type Pruner struct {
	cfg     Config
	lockKey int64
	log     *slog.Logger
	m       *metrics
}

// New validates cfg and returns a Pruner. It fails when Tables is empty, a
// table has no name or no Prune function, two tables share a name, Interval
// is negative, or the metrics cannot be registered.
func New(cfg Config) (*Pruner, error) {
	if len(cfg.Tables) == 0 {
		return nil, errors.New("retention: Config.Tables is empty")
	}
	seen := make(map[string]bool, len(cfg.Tables))
	for i, t := range cfg.Tables {
		if t.Name == "" || t.Prune == nil {
			return nil, fmt.Errorf("retention: Config.Tables[%d] needs a Name and a Prune function", i)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("retention: table %s named twice", t.Name)
		}
		seen[t.Name] = true
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("retention: Config.Interval %v is negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.LockName == "" {
		cfg.LockName = DefaultLockName
	}
	if cfg.Component == "" {
		cfg.Component = "retention"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(cfg.Metrics, cfg.Component, cfg.Tables)
	if err != nil {
		return nil, err
	}
	return &Pruner{cfg: cfg, lockKey: LockKey(cfg.LockName), log: log, m: m}, nil
}

// LockKey returns the pg_advisory_lock key of a lock name: the FNV-1a hash
// of the name, so that operators can find the holder in pg_locks
// (classid and objid are its high and low 32 bits).
func LockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum64())
}

// Result is what one run did.
type Result struct {
	// Skipped is true when another instance held the lock: nothing was
	// pruned.
	Skipped bool
	// Pruned is the rows deleted per table name.
	Pruned map[string]int64
	// Duration is how long the run took.
	Duration time.Duration
}

// Run prunes at once and then every Interval until ctx ends, and returns
// nil then. A failed run is logged and counted, and the next one comes at
// the next tick; Run itself does not fail.
func (p *Pruner) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		_, _ = p.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce takes the lock (when Config.DB is set), prunes every table in
// order and returns what it did, logging one line and updating the
// metrics. When another instance holds the lock it returns a Result with
// Skipped set and no error. A table's failure does not stop the others;
// the errors are joined. It fails when the lock cannot be taken for
// another reason.
func (p *Pruner) RunOnce(ctx context.Context) (Result, error) {
	start := time.Now()
	res := Result{Pruned: make(map[string]int64, len(p.cfg.Tables))}
	unlock, ok, err := p.lock(ctx)
	if err != nil {
		p.m.runs.WithLabelValues("error").Inc()
		p.log.Error("pruning failed: cannot take the lock", "lock", p.cfg.LockName, "err", err)
		return res, err
	}
	if !ok {
		res.Skipped = true
		p.m.runs.WithLabelValues("skipped").Inc()
		p.log.Info("pruning skipped: another instance holds the lock", "lock", p.cfg.LockName)
		return res, nil
	}
	defer unlock()
	var errs []error
	attrs := make([]any, 0, 2*len(p.cfg.Tables)+4)
	for _, t := range p.cfg.Tables {
		n, err := t.Prune(ctx)
		res.Pruned[t.Name] = n
		p.m.pruned.WithLabelValues(t.Name).Add(float64(n))
		attrs = append(attrs, t.Name, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: prune %s: %w", t.Name, err))
		}
	}
	res.Duration = time.Since(start)
	p.m.duration.Observe(res.Duration.Seconds())
	attrs = append(attrs, "duration", res.Duration)
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			p.log.Info("pruning stopped", attrs...)
			return res, err
		}
		p.m.runs.WithLabelValues("error").Inc()
		p.log.Error("pruning failed", append(attrs, "err", err)...)
		return res, err
	}
	p.m.runs.WithLabelValues("ok").Inc()
	p.m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	p.log.Info("pruned", attrs...)
	return res, nil
}

// lock takes the advisory lock on a connection of its own; ok is false
// when another session holds it. unlock releases the lock and the
// connection.
func (p *Pruner) lock(ctx context.Context) (unlock func(), ok bool, err error) {
	if p.cfg.DB == nil {
		return func() {}, true, nil
	}
	conn, err := p.cfg.DB.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, p.lockKey).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, p.lockKey); err != nil {
			// The lock lives as long as the session: end the session.
			p.log.Warn("cannot release the pruning lock; closing its connection", "err", err)
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}, true, nil
}

type metrics struct {
	pruned      *prometheus.CounterVec
	runs        *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, component string, tables []Table) (*metrics, error) {
	prefix := "messagekit_" + component + "_"
	m := &metrics{
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "pruned_rows_total",
			Help: "Rows deleted by the retention pruner, by table.",
		}, []string{"table"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "prune_runs_total",
			Help: "Pruning runs by result: ok, error, or skipped (another instance held the lock).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    prefix + "prune_duration_seconds",
			Help:    "Duration of the pruning runs that held the lock.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: prefix + "prune_last_success_timestamp_seconds",
			Help: "Unix time of the end of the last pruning run that succeeded; 0 before the first.",
		}),
	}
	// Every series exists from the start, so that rate() and absence
	// alerts work before the first deletion.
	for _, t := range tables {
		m.pruned.WithLabelValues(t.Name)
	}
	for _, r := range []string{"ok", "error", "skipped"} {
		m.runs.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.pruned, m.runs, m.duration, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("retention: register metrics: %w", err)
		}
	}
	return m, nil
}
