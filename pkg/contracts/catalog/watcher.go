package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// DefaultRefreshInterval is the default [WatcherConfig.RefreshInterval],
// the Python messagekit's EVENT_CATALOG_REFRESH_INTERVAL default.
const DefaultRefreshInterval = time.Hour

// WatcherConfig configures a [Watcher]. Source is required.
type WatcherConfig struct {
	// Source is where the catalog is read from.
	Source Source
	// Strict is [Options.Strict].
	Strict bool
	// RefreshInterval is how often the catalog is read again; zero means
	// [DefaultRefreshInterval].
	RefreshInterval time.Duration
	// Logger receives refresh failures and non-strict warnings; nil
	// discards them.
	Logger *slog.Logger
	// Metrics, when set, receives messagekit_catalog_refreshes_total{result},
	// messagekit_catalog_last_refresh_timestamp_seconds and
	// messagekit_catalog_event_types.
	Metrics prometheus.Registerer
}

// Watcher holds the current catalog of a source and refreshes it. Its
// methods are safe for concurrent use; [Watcher.Inspect] and
// [Watcher.Check] use the catalog current at the call.
type Watcher struct {
	cfg      WatcherConfig
	log      *slog.Logger
	cur      atomic.Pointer[Catalog]
	refresh  *prometheus.CounterVec
	lastOK   prometheus.Gauge
	types    prometheus.Gauge
	failures atomic.Int64
}

// NewWatcher loads the catalog once and returns a Watcher serving it. It
// fails when that first load fails: without a catalog there is nothing to
// validate against, and a strict producer could not tell good from bad.
func NewWatcher(ctx context.Context, cfg WatcherConfig) (*Watcher, error) {
	if cfg.Source == nil {
		return nil, fmt.Errorf("event catalog: no source")
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.refresh = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "messagekit_catalog_refreshes_total", Help: "Event catalog loads, by result (ok, failed); a failed one keeps the last good catalog.",
	}, []string{"result"})
	w.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "messagekit_catalog_last_refresh_timestamp_seconds", Help: "Unix time of the last successful event catalog load.",
	})
	w.types = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "messagekit_catalog_event_types", Help: "Event types in the current event catalog.",
	})
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{w.refresh, w.lastOK, w.types} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("event catalog: register metrics: %w", err)
			}
		}
	}
	if err := w.Refresh(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// Refresh reads and loads the catalog now. On success the new catalog
// replaces the current one; on failure the current one stays, and the
// error is returned (and counted).
func (w *Watcher) Refresh(ctx context.Context) error {
	c, err := LoadFrom(ctx, w.cfg.Source, Options{Strict: w.cfg.Strict, Logger: w.log})
	if err != nil {
		w.refresh.WithLabelValues("failed").Inc()
		w.failures.Add(1)
		return err
	}
	prev := w.cur.Swap(c)
	w.refresh.WithLabelValues("ok").Inc()
	w.lastOK.SetToCurrentTime()
	w.types.Set(float64(len(c.events)))
	if prev == nil || prev.Revision != c.Revision || c.Revision == "" {
		w.log.Debug("loaded event catalog", "source", w.cfg.Source.String(), "revision", c.Revision, "event_types", len(c.events))
	}
	if prev != nil && prev.Revision != c.Revision {
		w.log.Info("event catalog changed", "source", w.cfg.Source.String(), "from", prev.Revision, "to", c.Revision)
	}
	return nil
}

// Run refreshes the catalog every RefreshInterval until ctx ends, logging
// failed refreshes (the last good catalog stays); it returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.Refresh(ctx); err != nil && ctx.Err() == nil {
				cur := w.Current()
				w.log.Error("event catalog refresh failed; keeping the last good catalog",
					"source", w.cfg.Source.String(), "revision", cur.Revision, "err", err)
			}
		}
	}
}

// Current returns the catalog loaded last; never nil.
func (w *Watcher) Current() *Catalog { return w.cur.Load() }

// Failures returns how many refreshes failed since the Watcher started.
func (w *Watcher) Failures() int64 { return w.failures.Load() }

// Strict reports whether the catalog refuses what it does not list.
func (w *Watcher) Strict() bool { return w.cfg.Strict }

// Inspect is [Catalog.Inspect] on the current catalog.
func (w *Watcher) Inspect(e contracts.Envelope) *Violation { return w.Current().Inspect(e) }

// Check is [Catalog.Check] on the current catalog.
func (w *Watcher) Check(e contracts.Envelope) error { return w.Current().Check(e) }
