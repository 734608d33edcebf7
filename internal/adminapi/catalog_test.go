package adminapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

// GET /api/v1/catalog serves every event type with its versions and
// schemas (DESIGN.md §7), behind the token; without a catalog it is a 404
// that says how to configure one.
func TestCatalogEndpoint(t *testing.T) {
	t.Parallel()
	w, err := catalog.NewWatcher(context.Background(), catalog.WatcherConfig{
		Source: catalog.Dir("../../pkg/contracts/catalog/testdata/shop"), Strict: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func(cat adminapi.CatalogSource, auth bool) *httptest.ResponseRecorder {
		cfg := adminapi.Config{DeadLetters: fakeStore{}, DB: brokenDB{}, Token: token}
		if cat != nil {
			cfg.Catalog = cat
		}
		h, err := adminapi.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/catalog", nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := get(w, true)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var body struct {
		Strict     bool `json:"strict"`
		EventTypes []struct {
			EventType    string `json:"event_type"`
			OwnerService string `json:"owner_service"`
			Versions     []struct {
				DataVersion string         `json:"data_version"`
				SchemaFile  string         `json:"schema_file"`
				Schema      map[string]any `json:"schema"`
			} `json:"versions"`
		} `json:"event_types"`
		Services []struct {
			Name            string   `json:"name"`
			EventsPublished []string `json:"events_published"`
		} `json:"services"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if !body.Strict || len(body.EventTypes) != 3 || len(body.Services) != 3 {
		t.Fatalf("body = %+v", body)
	}
	orders := body.EventTypes[2]
	if orders.EventType != "orders.order.created" || orders.OwnerService != "order-service" || len(orders.Versions) != 2 ||
		orders.Versions[1].DataVersion != "2.0" || orders.Versions[1].Schema["title"] != "orders.order.created 2.0" {
		t.Fatalf("orders.order.created = %+v", orders)
	}
	if rec := get(w, false); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", rec.Code)
	}
	if rec := get(nil, true); rec.Code != http.StatusNotFound {
		t.Fatalf("without a catalog: %d %s", rec.Code, rec.Body)
	}
}
