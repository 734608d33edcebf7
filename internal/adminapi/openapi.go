package adminapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the API's OpenAPI 3 document, written by hand and
// checked against the router by TestOpenAPIMatchesRouter.
//
//go:embed openapi.json
var openAPIDocument string

// OpenAPI returns a copy of the API's OpenAPI 3 document (JSON).
func OpenAPI() []byte { return []byte(openAPIDocument) }

// GET /api/v1/openapi.json: served without the token.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(openAPIDocument))
}
