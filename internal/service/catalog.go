package service

import (
	"context"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/config"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

// Catalog loads the event catalog cfg names and keeps it refreshed until
// ctx ends; it returns nil, nil when cfg names none. A failed first load is
// an error (the binary exits); a failed refresh is logged and counted, the
// last good catalog stays, and /readyz is not affected.
func Catalog(ctx context.Context, rt *Runtime, cfg config.Catalog) (*catalog.Watcher, error) {
	var src catalog.Source
	switch {
	case cfg.CatalogPath != "":
		src = catalog.Dir(cfg.CatalogPath)
	case cfg.CatalogRepoURL.IsSet():
		src = catalog.Git{URL: cfg.CatalogRepoURL.Reveal(), Branch: cfg.CatalogBranch}
	default:
		return nil, nil
	}
	w, err := catalog.NewWatcher(ctx, catalog.WatcherConfig{
		Source:          src,
		Strict:          cfg.CatalogStrict,
		RefreshInterval: time.Duration(cfg.CatalogRefresh),
		Logger:          rt.Logger(),
		Metrics:         rt.Registry(),
	})
	if err != nil {
		return nil, err
	}
	cur := w.Current()
	rt.Logger().Info("loaded event catalog", "source", src.String(), "revision", cur.Revision,
		"event_types", len(cur.Events()), "strict", cfg.CatalogStrict)
	go func() { _ = w.Run(ctx) }()
	return w, nil
}
