package config_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/config"
)

type catalogSpec struct {
	config.Catalog
}

// The EVENT_CATALOG_* group: the Python messagekit's seconds and Go
// durations both work; a bad value or both sources stop start-up naming the
// variable.
func TestCatalogGroup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		refresh time.Duration
		errVar  string
	}{
		{"defaults", nil, time.Hour, ""},
		{"seconds", map[string]string{"EVENT_CATALOG_REFRESH_INTERVAL": "90"}, 90 * time.Second, ""},
		{"duration", map[string]string{"EVENT_CATALOG_REFRESH_INTERVAL": "5m"}, 5 * time.Minute, ""},
		{"garbage interval", map[string]string{"EVENT_CATALOG_REFRESH_INTERVAL": "often"}, 0, "EVENT_CATALOG_REFRESH_INTERVAL"},
		{"zero interval", map[string]string{"EVENT_CATALOG_REFRESH_INTERVAL": "0"}, 0, "EVENT_CATALOG_REFRESH_INTERVAL"},
		{"both sources", map[string]string{"EVENT_CATALOG_PATH": "/c", "EVENT_CATALOG_REPO_URL": "https://x/y.git"}, 0, "EVENT_CATALOG_PATH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"EVENT_CATALOG_PATH", "EVENT_CATALOG_REPO_URL", "EVENT_CATALOG_BRANCH", "EVENT_CATALOG_REFRESH_INTERVAL", "EVENT_CATALOG_STRICT_MODE"} {
				t.Setenv(v, "") // restores the old value at cleanup
				if err := os.Unsetenv(v); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tc.vars {
				t.Setenv(k, v)
			}
			var s catalogSpec
			err := config.Load(&s)
			if tc.errVar != "" {
				var ce *config.Error
				if !errors.As(err, &ce) || ce.Var != tc.errVar || !strings.Contains(err.Error(), tc.errVar) {
					t.Fatalf("err = %v, want one naming %s", err, tc.errVar)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Duration(s.CatalogRefresh) != tc.refresh || s.CatalogBranch != "main" || s.CatalogStrict {
				t.Fatalf("got %+v", s.Catalog)
			}
		})
	}
}
