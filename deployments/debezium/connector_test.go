package debezium_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/deployments/debezium"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
)

const router = "transforms.outbox."

// connector parses outbox-connector.json; Connect wants every config value
// as a string.
func connector(t *testing.T) map[string]string {
	t.Helper()
	var c struct {
		Name   string            `json:"name"`
		Config map[string]string `json:"config"`
	}
	dec := json.NewDecoder(strings.NewReader(string(debezium.ConnectorJSON)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("outbox-connector.json: %v", err)
	}
	if c.Name == "" || len(c.Config) == 0 {
		t.Fatal("outbox-connector.json needs a name and a config")
	}
	c.Config["name"] = c.Name
	return c.Config
}

// placements parses table.fields.additional.placement: column -> alias.
func placements(t *testing.T, cfg map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range strings.Split(cfg[router+"table.fields.additional.placement"], ",") {
		parts := strings.Split(strings.TrimSpace(p), ":")
		if len(parts) != 3 || parts[1] != "header" {
			t.Fatalf("placement %q: want column:header:alias", p)
		}
		out[parts[0]] = parts[2]
	}
	return out
}

// Every column the configuration names exists in the migrated outbox table:
// the configuration and migrations/ can not drift apart.
func TestConnectorColumnsExist(t *testing.T) {
	cfg := connector(t)
	db := testenv.MigratedPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	schema, table, ok := strings.Cut(cfg["table.include.list"], ".")
	if !ok || strings.Contains(table, ",") {
		t.Fatalf("table.include.list %q: want exactly schema.outbox_events", cfg["table.include.list"])
	}
	rows, err := db.Pool.Query(ctx, "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2", schema, table)
	if err != nil {
		t.Fatal(err)
	}
	var columns []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		columns = append(columns, c)
	}
	if err := rows.Err(); err != nil || len(columns) == 0 {
		t.Fatalf("table %s.%s not in the migrated schema (%v)", schema, table, err)
	}
	named := []string{
		cfg[router+"table.field.event.id"], cfg[router+"table.field.event.key"],
		cfg[router+"table.field.event.payload"], cfg[router+"route.by.field"],
	}
	for col := range placements(t, cfg) {
		named = append(named, col)
	}
	for _, col := range named {
		if !slices.Contains(columns, col) {
			t.Errorf("column %q is not in %s.%s (columns: %v)", col, schema, table, columns)
		}
	}
	// The router fails a record whose route.by.field is NULL.
	var nullable string
	if err := db.Pool.QueryRow(ctx, "SELECT is_nullable FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3",
		schema, table, cfg[router+"route.by.field"]).Scan(&nullable); err != nil || nullable != "NO" {
		t.Errorf("route.by.field %s must be NOT NULL (is_nullable %q, %v)", cfg[router+"route.by.field"], nullable, err)
	}
}

// The record is DESIGN.md §3's, and the Relay's: the same key, value
// columns and headers, on the Relay's default topic.
func TestConnectorRecordContract(t *testing.T) {
	cfg := connector(t)
	for setting, want := range map[string]string{
		"connector.class":                    "io.debezium.connector.postgresql.PostgresConnector",
		"plugin.name":                        "pgoutput",
		"publication.autocreate.mode":        "filtered",
		"snapshot.mode":                      "no_data",
		"table.include.list":                 "public.outbox_events",
		router + "type":                      "io.debezium.transforms.outbox.EventRouter",
		router + "table.field.event.id":      "event_id",
		router + "table.field.event.key":     "aggregate_id",
		router + "table.field.event.payload": "payload",
		router + "route.topic.replacement":   outbox.DefaultTopic,
		"key.converter":                      "org.apache.kafka.connect.storage.StringConverter",
	} {
		if cfg[setting] != want {
			t.Errorf("%s = %q, want %q", setting, cfg[setting], want)
		}
	}
	for _, setting := range []string{"slot.name", "publication.name", "heartbeat.interval.ms", "topic.prefix"} {
		if cfg[setting] == "" {
			t.Errorf("%s is not set", setting)
		}
	}

	// The value must be the envelope JSON itself: either the payload's text
	// through the string converter, or an expanded payload through the JSON
	// converter without schemas.
	switch conv := cfg["value.converter"]; conv {
	case "org.apache.kafka.connect.storage.StringConverter":
		if cfg[router+"table.expand.json.payload"] == "true" {
			t.Error("an expanded payload through the StringConverter is a Struct's toString, not JSON")
		}
	case "org.apache.kafka.connect.json.JsonConverter":
		if cfg[router+"table.expand.json.payload"] != "true" || cfg["value.converter.schemas.enable"] != "false" {
			t.Error("the JsonConverter needs table.expand.json.payload=true and schemas.enable=false, or the value is an escaped string")
		}
	default:
		t.Errorf("value.converter %q does not produce plain JSON", conv)
	}

	// Headers: the router's own `id` plus the placed columns must be exactly
	// the contract's headers that the Relay writes, each from its column.
	wantHeaders := map[string]string{ // column -> header
		cfg[router+"table.field.event.id"]: contracts.KafkaHeaderID,
		"event_type":                       contracts.KafkaHeaderEventType,
		"aggregate_type":                   contracts.KafkaHeaderAggregateType,
		"traceparent":                      contracts.KafkaHeaderTraceparent,
		"tracestate":                       contracts.KafkaHeaderTracestate,
	}
	got := placements(t, cfg)
	got[cfg[router+"table.field.event.id"]] = contracts.KafkaHeaderID // the router always adds it
	for col, header := range wantHeaders {
		if got[col] != header {
			t.Errorf("column %s goes to header %q, want %q", col, got[col], header)
		}
	}
	for col, header := range got {
		if wantHeaders[col] != header {
			t.Errorf("column %s goes to header %q, which DESIGN.md §3 does not list for it", col, header)
		}
	}

	// The router must apply to the outbox table's change events, which
	// Debezium names <topic.prefix>.<schema>.<table>.
	if cfg[router+"predicate"] != "" {
		name := cfg[router+"predicate"]
		if !slices.Contains(strings.Split(cfg["predicates"], ","), name) {
			t.Errorf("predicate %s is not declared in predicates", name)
		}
		re, err := regexp.Compile("^(?:" + cfg["predicates."+name+".pattern"] + ")$")
		if err != nil {
			t.Fatal(err)
		}
		if topic := cfg["topic.prefix"] + "." + cfg["table.include.list"]; !re.MatchString(topic) {
			t.Errorf("predicate pattern %q does not match the outbox change topic %q", re, topic)
		}
		if re.MatchString("__debezium-heartbeat." + cfg["topic.prefix"]) {
			t.Error("predicate pattern matches the heartbeat topic")
		}
	}
}

// README.md explains every setting of the file.
func TestReadmeExplainsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for setting := range connector(t) {
		if !strings.Contains(string(readme), "`"+setting+"`") {
			t.Errorf("README.md does not explain `%s`", setting)
		}
	}
}
