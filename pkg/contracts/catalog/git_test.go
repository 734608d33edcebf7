package catalog_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog/catalogtest"
)

// A catalog on a branch of a bare repository, read in process; a commit
// pushed later is picked up by the next refresh; a broken commit keeps the
// last good catalog and is counted.
func TestWatcherGit(t *testing.T) {
	bare := t.TempDir()
	repo := catalogtest.NewBareRepo(t, bare, "main")
	repo.Commit(t, catalogtest.Files(t, "testdata/shop"), "catalog")
	reg := prometheus.NewRegistry()
	w, err := catalog.NewWatcher(context.Background(), catalog.WatcherConfig{
		Source: catalog.Git{URL: bare}, Strict: true, RefreshInterval: 20 * time.Millisecond, Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	first := w.Current().Revision
	if len(first) != 40 || w.Current().Event("orders.order.created") == nil || w.Current().Event("shipping.parcel.sent") != nil {
		t.Fatalf("first load: revision %q", first)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	files := catalogtest.Files(t, "testdata/shop")
	files["events.toml"] += "\n[events.\"shipping.parcel.sent\"]\nowner_service = \"order-service\"\n"
	repo.Commit(t, files, "add shipping.parcel.sent")
	waitFor(t, func() bool { return w.Current().Event("shipping.parcel.sent") != nil })

	good := w.Current().Revision
	files["events.toml"] += "\n[events.\"broken\n"
	repo.Commit(t, files, "broken")
	waitFor(t, func() bool {
		return testutil.ToFloat64(counter(t, reg, "messagekit_catalog_refreshes_total", "failed")) >= 1
	})
	if w.Current().Revision != good || w.Current().Event("shipping.parcel.sent") == nil {
		t.Fatalf("a failed refresh replaced the catalog: %s", w.Current().Revision)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A URL with a scheme is cloned into memory.
func TestGitClone(t *testing.T) {
	bare := t.TempDir()
	repo := catalogtest.NewBareRepo(t, bare, "catalog")
	repo.Commit(t, catalogtest.Files(t, "testdata/shop"), "catalog")
	c, err := catalog.LoadFrom(context.Background(), catalog.Git{URL: "file://" + bare, Branch: "catalog"}, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Event("orders.order.created") == nil || c.Event("orders.order.created").Version("2.0") == nil {
		t.Fatal("cloned catalog incomplete")
	}
	if _, err := catalog.LoadFrom(context.Background(), catalog.Git{URL: "file://" + bare, Branch: "nope"}, catalog.Options{}); err == nil {
		t.Fatal("a missing branch loaded")
	}
}

// GitRevision reads an older commit of a working repository.
func TestGitRevision(t *testing.T) {
	dir := t.TempDir()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := r.Worktree()
	write := func(events string) {
		if err := os.WriteFile(filepath.Join(dir, "events.toml"), []byte(events), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add("events.toml"); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Commit("c", &git.CommitOptions{Author: sig()}); err != nil {
			t.Fatal(err)
		}
	}
	write("[events.\"a.b.c\"]\n")
	write("[events.\"a.b.c\"]\n[events.\"a.b.d\"]\n")
	old, _, err := catalog.GitRevision(filepath.Join(dir), "HEAD~1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(old, catalog.Options{})
	if err != nil || c.Event("a.b.d") != nil || c.Event("a.b.c") == nil {
		t.Fatalf("HEAD~1: %v", err)
	}
}

func sig() *object.Signature {
	return &object.Signature{Name: "test", Email: "test@example.com", When: time.Now()}
}

func counter(t *testing.T, reg *prometheus.Registry, name, result string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == result {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	})
}

type collectorFunc func() float64

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, f())
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
