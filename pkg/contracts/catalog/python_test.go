package catalog_test

import (
	"testing"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// An event in the Python messagekit's flat shape (business fields beside
// the envelope's, no data member) is checked against the same schemas: its
// business fields are its data.
func TestPythonFlatEventAgainstSchema(t *testing.T) {
	c := load(t, "testdata/shop", true)
	for _, tc := range []struct {
		name, body, field string
	}{
		{"valid", `{"eventId":"0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b","eventType":"identity.user.registered","aggregateId":"user-42",
			"occurredAt":"2026-11-26T10:00:00.123456Z","source":"identity-service","dataVersion":"1.0","correlationId":null,
			"causationId":null,"metadata":{},"userId":42,"email":"ada@example.com"}`, ""},
		{"invalid", `{"eventId":"0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b","eventType":"identity.user.registered","aggregateId":"user-42",
			"occurredAt":"2026-11-26T10:00:00.123456Z","source":"identity-service","dataVersion":"1.0","correlationId":null,
			"causationId":null,"metadata":{},"userId":"42","email":"ada@example.com"}`, "data.userId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := contracts.Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			v := c.Inspect(e)
			switch {
			case tc.field == "" && v != nil:
				t.Fatalf("violation %v", v)
			case tc.field != "" && (v == nil || v.Field != tc.field):
				t.Fatalf("violation %v, want one on %s", v, tc.field)
			}
		})
	}
}
