package catalog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

func load(t *testing.T, dir string, strict bool) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load(os.DirFS(dir), catalog.Options{Strict: strict})
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return c
}

func envelope(t *testing.T, eventType, source, version, data string) contracts.Envelope {
	t.Helper()
	e, err := contracts.New(eventType, "agg-1", source, nil, contracts.WithDataVersion(version))
	if err != nil {
		t.Fatal(err)
	}
	e.Data = []byte(data)
	return e
}

// The Python messagekit's documented layout, written as its docs show it,
// loads as is: one catalog serves both fleets.
func TestPythonDocsLayout(t *testing.T) {
	c := load(t, "testdata/python-docs", true)
	et := c.Event("orders.order.created")
	if et == nil || et.OwnerService != "order-service" || et.OwnerTeam != "commerce" || et.Description != "Emitted when a new order is placed" {
		t.Fatalf("event = %+v", et)
	}
	s := c.Service("order-service")
	if s == nil || s.Team != "commerce" || s.Repository != "https://github.com/your-org/order-service" ||
		len(s.EventsPublished) != 1 || s.EventsPublished[0] != "orders.order.created" {
		t.Fatalf("service = %+v", s)
	}
	if v := c.Inspect(envelope(t, "orders.order.created", "order-service", "1.0", `{"anything":1}`)); v != nil {
		t.Fatalf("listed event without schemas: %v", v)
	}
}

// Both spellings of an entry load: [events."x.y.z"] (the Python docs) and
// ["events.x.y.z"] (the key the Python manager looks up).
func TestBothSpellings(t *testing.T) {
	c := load(t, "testdata/shop", true)
	var names []string
	for _, e := range c.Events() {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, ","); got != "gamification.xp.awarded,identity.user.registered,orders.order.created" {
		t.Fatalf("events = %s", got)
	}
	if c.Service("identity-service") == nil || c.Service("order-service") == nil {
		t.Fatal("services of both spellings not loaded")
	}
	reg := c.Event("identity.user.registered")
	if len(reg.Versions) != 1 || reg.Versions[0].SchemaFile != "schemas/identity.user.registered.v1.schema.json" {
		t.Fatalf("versions = %+v", reg.Versions)
	}
	if v := c.Event("orders.order.created").Version("2.0"); v == nil || !bytes.Contains(v.Schema, []byte(`"channel"`)) {
		t.Fatalf("version 2.0 = %+v", v)
	}
}

const validOrder = `{"orderId":"o-1","customerId":"c-1","total":{"amount":"10.00","currency":"EUR"},"items":[{"sku":"a","quantity":1}]}`

// Pins the rules of Inspect, and the field path a schema violation names.
func TestInspect(t *testing.T) {
	c := load(t, "testdata/shop", true)
	cases := []struct {
		name, eventType, source, version, data string
		kind                                   catalog.Kind
		field                                  string
	}{
		{"valid", "orders.order.created", "order-service", "1.0", validOrder, "", ""},
		{"valid v2 with the added field", "orders.order.created", "order-service", "2.0", strings.Replace(validOrder, `{`, `{"channel":"web",`, 1), "", ""},
		{"unknown type", "orders.order.deleted", "order-service", "1.0", `{}`, catalog.UnknownType, "eventType"},
		{"unknown source", "orders.order.created", "billing-service", "1.0", validOrder, catalog.UnknownSource, "source"},
		{"unknown version", "orders.order.created", "order-service", "3.0", validOrder, catalog.UnknownVersion, "dataVersion"},
		{"required missing", "orders.order.created", "order-service", "1.0", `{"orderId":"o-1","total":{"amount":"1","currency":"EUR"},"items":[{"sku":"a","quantity":1}]}`, catalog.Schema, "data.customerId"},
		{"nested type", "orders.order.created", "order-service", "1.0", strings.Replace(validOrder, `"quantity":1`, `"quantity":"1"`, 1), catalog.Schema, "data.items.0.quantity"},
		{"enum through $ref", "orders.order.created", "order-service", "1.0", strings.Replace(validOrder, `EUR`, `XXX`, 1), catalog.Schema, "data.total.currency"},
		{"no schema: any data", "gamification.xp.awarded", "gamification-service", "7.0", `{"x":1}`, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := c.Inspect(envelope(t, tc.eventType, tc.source, tc.version, tc.data))
			if tc.kind == "" {
				if v != nil {
					t.Fatalf("violation %v", v)
				}
				return
			}
			if v == nil {
				t.Fatal("no violation")
			}
			if v.Kind != tc.kind || v.Field != tc.field {
				t.Fatalf("violation = %s %s (%v), want %s %s", v.Kind, v.Field, v, tc.kind, tc.field)
			}
			var ve *contracts.ValidationError
			if !errors.As(v, &ve) || ve.Field != tc.field {
				t.Fatalf("does not unwrap to a ValidationError on %s: %v", tc.field, ve)
			}
			if st, ok := contracts.StageOf(v); !ok || st != contracts.StageValidate {
				t.Fatalf("stage = %v %v", st, ok)
			}
			if !strings.Contains(v.Error(), tc.field) {
				t.Fatalf("message %q does not name %s", v.Error(), tc.field)
			}
		})
	}
}

// Strict mode refuses what the catalog does not list; warn mode logs it and
// lets it through; bad data is refused in both.
func TestCheckModes(t *testing.T) {
	var logs bytes.Buffer
	warn, err := catalog.Load(os.DirFS("testdata/shop"), catalog.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	strict := load(t, "testdata/shop", true)
	unknown := envelope(t, "orders.order.deleted", "order-service", "1.0", `{}`)
	if err := strict.Check(unknown); err == nil {
		t.Fatal("strict: unknown type accepted")
	}
	if err := warn.Check(unknown); err != nil {
		t.Fatalf("warn: %v", err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "orders.order.deleted") {
		t.Fatalf("no warning logged: %s", logs.String())
	}
	bad := envelope(t, "orders.order.created", "order-service", "1.0", strings.Replace(validOrder, `"o-1"`, `1`, 1))
	for _, c := range []*catalog.Catalog{strict, warn} {
		err := c.Check(bad)
		var v *catalog.Violation
		if !errors.As(err, &v) || v.Kind != catalog.Schema {
			t.Fatalf("strict=%v: bad data gave %v", c.Strict(), err)
		}
	}
	if _, err := strict.New("orders.order.created", "o-1", "order-service", json.RawMessage(strings.Replace(validOrder, `"o-1"`, `1`, 1))); err == nil ||
		!strings.Contains(err.Error(), "data.orderId") {
		t.Fatalf("Catalog.New = %v, want an error naming data.orderId", err)
	}
	if _, err := strict.New("orders.order.created", "o-1", "order-service", []byte(validOrder)); err == nil {
		t.Fatal("Catalog.New took a []byte as an object")
	}
}

// An invalid catalog file is an error naming the file, the line and the key.
func TestFileErrors(t *testing.T) {
	schema := &fstest.MapFile{Data: []byte(`{"type":"object"}`)}
	cases := []struct {
		name  string
		files fstest.MapFS
		file  string
		line  int
		key   string
		in    string
	}{
		{"syntax", fstest.MapFS{"events.toml": {Data: []byte("[events.\"a.b.c\"]\nowner_service = \n")}}, "events.toml", 2, "", "owner_service"},
		{"wrong type", fstest.MapFS{"events.toml": {Data: []byte("\n[events.\"a.b.c\"]\nowner_service = 3\n")}}, "events.toml", 3, `events."a.b.c".owner_service`, "want a string"},
		{"unquoted dotted name", fstest.MapFS{"events.toml": {Data: []byte("[events.orders.order.created]\nowner_service = \"x\"\n")}}, "events.toml", 1, "events.orders", "quote"},
		{"missing schema file", fstest.MapFS{"events.toml": {Data: []byte("[events.\"a.b.c\"]\nowner_service = \"x\"\nschemas = { \"1.0\" = \"schemas/nope.json\" }\n")}}, "events.toml", 3, `events."a.b.c".schemas."1.0"`, "schemas/nope.json"},
		{"schema outside", fstest.MapFS{"events.toml": {Data: []byte("[events.\"a.b.c\"]\n[events.\"a.b.c\".schemas]\n\"1.0\" = \"../x.json\"\n")}}, "events.toml", 3, `events."a.b.c".schemas."1.0"`, "outside"},
		{"bad schema", fstest.MapFS{"events.toml": {Data: []byte("[events.\"a.b.c\"]\nschemas = { \"1.0\" = \"s.json\" }\n")}, "s.json": {Data: []byte(`{"type":"nope"}`)}}, "events.toml", 2, `events."a.b.c".schemas."1.0"`, "s.json"},
		{"listed twice", fstest.MapFS{"events.toml": {Data: []byte("[events.\"a.b.c\"]\n[\"events.a.b.c\"]\n")}, "s.json": schema}, "events.toml", 2, `"events.a.b.c"`, "twice"},
		{"bad service name", fstest.MapFS{"events.toml": {Data: []byte("")}, "services.toml": {Data: []byte("\n\n[services.Order_Service]\n")}}, "services.toml", 3, "services.Order_Service", "not a service name"},
		{"events_published type", fstest.MapFS{"events.toml": {Data: []byte("")}, "services.toml": {Data: []byte("[services.a]\nevents_published = \"x\"\n")}}, "services.toml", 2, "services.a.events_published", "want an array"},
		{"no events.toml", fstest.MapFS{"services.toml": {Data: []byte("")}}, "events.toml", 0, "", "cannot read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.Load(tc.files, catalog.Options{})
			var fe *catalog.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FileError", err)
			}
			if fe.File != tc.file || fe.Line != tc.line || fe.Key != tc.key || !strings.Contains(fe.Error(), tc.in) {
				t.Fatalf("err = %q (file %s line %d key %s), want %s:%d key %s containing %q", fe, fe.File, fe.Line, fe.Key, tc.file, tc.line, tc.key, tc.in)
			}
		})
	}
}
