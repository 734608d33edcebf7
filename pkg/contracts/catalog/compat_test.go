package catalog_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

const baseSchema = `{
  "type": "object",
  "properties": {
    "id": {"type": "string"},
    "status": {"type": "string", "enum": ["new", "paid"]},
    "customer": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
    "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    "total": {"$ref": "money.json"}
  },
  "required": ["id"]
}`

const money = `{"type": "object", "properties": {"currency": {"type": "string", "enum": ["EUR", "USD"]}}}`

func compatCatalog(t *testing.T, events, schema, moneySchema string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load(fstest.MapFS{
		"events.toml": {Data: []byte(events)},
		"order.json":  {Data: []byte(schema)},
		"order2.json": {Data: []byte(schema)},
		"money.json":  {Data: []byte(moneySchema)},
	}, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const baseEvents = `
[events."shop.order.placed"]
schemas = { "1.0" = "order.json" }
[events."shop.order.cancelled"]
`

// One case per rule: each breaking rule is seen to fail the check, and
// additive changes pass. Removing a rule from Compare fails its case.
func TestCompareRules(t *testing.T) {
	cases := []struct {
		name           string
		events, schema string
		money          string
		want           catalog.Change // the one change expected
	}{
		{"event type removed", "[events.\"shop.order.placed\"]\nschemas = { \"1.0\" = \"order.json\" }\n", baseSchema, money,
			catalog.Change{Rule: catalog.EventTypeRemoved, EventType: "shop.order.cancelled"}},
		{"version removed", "[events.\"shop.order.placed\"]\n[events.\"shop.order.cancelled\"]\n", baseSchema, money,
			catalog.Change{Rule: catalog.VersionRemoved, EventType: "shop.order.placed", DataVersion: "1.0"}},
		{"field removed", baseEvents, strings.Replace(baseSchema, `"id": {"type": "string"},`, ``, 1), money,
			catalog.Change{Rule: catalog.FieldRemoved, Field: "id"}},
		{"nested field removed", baseEvents, strings.Replace(baseSchema, `"properties": {"sku": {"type": "string"}}`, `"properties": {}`, 1), money,
			catalog.Change{Rule: catalog.FieldRemoved, Field: "lines[].sku"}},
		{"type changed", baseEvents, strings.Replace(baseSchema, `"id": {"type": "string"}`, `"id": {"type": "integer"}`, 1), money,
			catalog.Change{Rule: catalog.TypeChanged, Field: "id", Detail: "string → integer"}},
		{"newly required", baseEvents, strings.Replace(baseSchema, `"required": ["id"]`, `"required": ["id", "status"]`, 1), money,
			catalog.Change{Rule: catalog.NewlyRequired, Field: "status"}},
		{"enum value removed", baseEvents, strings.Replace(baseSchema, `["new", "paid"]`, `["new"]`, 1), money,
			catalog.Change{Rule: catalog.EnumValueRemoved, Field: "status", Detail: `"paid"`}},
		{"enum value removed behind $ref", baseEvents, baseSchema, strings.Replace(money, `["EUR", "USD"]`, `["EUR"]`, 1),
			catalog.Change{Rule: catalog.EnumValueRemoved, Field: "total.currency", Detail: `"USD"`}},
		{"additive: event type added", baseEvents + "[events.\"shop.order.shipped\"]\n", baseSchema, money,
			catalog.Change{Rule: catalog.EventTypeAdded, EventType: "shop.order.shipped"}},
		{"additive: version added", strings.Replace(baseEvents, `"1.0" = "order.json"`, `"1.0" = "order.json", "2.0" = "order2.json"`, 1), baseSchema, money,
			catalog.Change{Rule: catalog.VersionAdded, EventType: "shop.order.placed", DataVersion: "2.0"}},
		{"additive: optional field added", baseEvents, strings.Replace(baseSchema, `"id": {"type": "string"},`, `"id": {"type": "string"}, "note": {"type": "string"},`, 1), money,
			catalog.Change{Rule: catalog.FieldAdded, Field: "note"}},
		{"additive: enum value added", baseEvents, strings.Replace(baseSchema, `["new", "paid"]`, `["new", "paid", "shipped"]`, 1), money,
			catalog.Change{Rule: catalog.EnumValueAdded, Field: "status", Detail: `"shipped"`}},
		{"additive: no longer required", baseEvents, strings.Replace(baseSchema, `"required": ["email"]`, `"required": []`, 1), money,
			catalog.Change{Rule: catalog.NoLongerRequired, Field: "customer.email"}},
	}
	old := compatCatalog(t, baseEvents, baseSchema, money)
	if changes := catalog.Compare(old, compatCatalog(t, baseEvents, baseSchema, money)); len(changes) != 0 {
		t.Fatalf("identical catalogs differ: %v", changes)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			changes := catalog.Compare(old, compatCatalog(t, tc.events, tc.schema, tc.money))
			if len(changes) != 1 {
				t.Fatalf("changes = %v, want exactly one %s", changes, tc.want.Rule)
			}
			got, want := changes[0], tc.want
			if want.EventType == "" {
				want.EventType, want.DataVersion = "shop.order.placed", "1.0"
			}
			if got != want {
				t.Fatalf("change = %#v, want %#v", got, want)
			}
			additive := strings.HasPrefix(tc.name, "additive")
			if got.Breaking() == additive || (len(catalog.Breaking(changes)) == 0) != additive {
				t.Fatalf("%s: Breaking() = %v", got, got.Breaking())
			}
		})
	}
}
