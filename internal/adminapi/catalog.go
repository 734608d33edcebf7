package adminapi

import (
	"encoding/json"
	"net/http"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

// CatalogSource gives the current event catalog; *catalog.Watcher is one.
type CatalogSource interface {
	Current() *catalog.Catalog
	Strict() bool
}

type catalogBody struct {
	Revision   string             `json:"revision"`
	Strict     bool               `json:"strict"`
	EventTypes []catalogEventType `json:"event_types"`
	Services   []catalogService   `json:"services"`
}

type catalogEventType struct {
	EventType    string           `json:"event_type"`
	OwnerService string           `json:"owner_service"`
	OwnerTeam    string           `json:"owner_team"`
	Description  string           `json:"description"`
	Versions     []catalogVersion `json:"versions"`
}

type catalogVersion struct {
	DataVersion string          `json:"data_version"`
	SchemaFile  string          `json:"schema_file"`
	Schema      json.RawMessage `json:"schema"`
}

type catalogService struct {
	Name            string   `json:"name"`
	Team            string   `json:"team"`
	Repository      string   `json:"repository"`
	Description     string   `json:"description"`
	EventsPublished []string `json:"events_published"`
}

// getCatalog answers GET /api/v1/catalog (DESIGN.md §7, §13): every event
// type with its versions and their schemas, and every service.
func (h *Handler) getCatalog(w http.ResponseWriter, r *http.Request) {
	if h.catalog == nil {
		writeError(w, http.StatusNotFound, "no event catalog configured: set EVENT_CATALOG_PATH or EVENT_CATALOG_REPO_URL")
		return
	}
	c := h.catalog.Current()
	body := catalogBody{Revision: c.Revision, Strict: h.catalog.Strict(),
		EventTypes: []catalogEventType{}, Services: []catalogService{}}
	for _, e := range c.Events() {
		et := catalogEventType{EventType: e.Name, OwnerService: e.OwnerService, OwnerTeam: e.OwnerTeam,
			Description: e.Description, Versions: []catalogVersion{}}
		for _, v := range e.Versions {
			et.Versions = append(et.Versions, catalogVersion{DataVersion: v.DataVersion, SchemaFile: v.SchemaFile, Schema: v.Schema})
		}
		body.EventTypes = append(body.EventTypes, et)
	}
	for _, s := range c.Services() {
		published := s.EventsPublished
		if published == nil {
			published = []string{}
		}
		body.Services = append(body.Services, catalogService{Name: s.Name, Team: s.Team, Repository: s.Repository,
			Description: s.Description, EventsPublished: published})
	}
	writeJSON(w, http.StatusOK, body)
}
