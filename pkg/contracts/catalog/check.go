package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Kind says which catalog rule an envelope breaks; it is the kind label of
// messagekit_bridge_catalog_violations_total.
type Kind string

// Violation kinds.
const (
	// UnknownType: the event type is not in events.toml.
	UnknownType Kind = "unknown_type"
	// UnknownSource: the source is not in services.toml.
	UnknownSource Kind = "unknown_source"
	// UnknownVersion: the event type has schemas, none for this dataVersion.
	UnknownVersion Kind = "unknown_version"
	// Schema: data breaks the schema of its dataVersion.
	Schema Kind = "schema"
)

// Violation is an envelope that breaks a catalog rule. It unwraps to a
// [*contracts.ValidationError] (Field "eventType", "source",
// "dataVersion", or the path of the offending member of data such as
// "data.customer.email"), so [contracts.StageOf] maps it to the VALIDATE
// dead-letter stage.
type Violation struct {
	// Kind is the rule broken.
	Kind Kind
	// EventType and DataVersion are the envelope's.
	EventType, DataVersion string
	// Field and Reason are those of the ValidationError.
	Field, Reason string
}

// Error returns "event catalog: <field>: <reason>".
func (v *Violation) Error() string { return "event catalog: " + v.Field + ": " + v.Reason }

// Unwrap returns the violation as a *contracts.ValidationError.
func (v *Violation) Unwrap() error {
	return &contracts.ValidationError{Field: v.Field, Reason: v.Reason}
}

// Permanent reports true: the same event breaks the same catalog again.
func (v *Violation) Permanent() bool { return true }

// Listed reports whether the violation is about what the catalog lists
// (type, source, version), which only strict mode refuses, rather than
// about data.
func (v *Violation) Listed() bool { return v.Kind != Schema }

// Inspect returns the first rule of the catalog that e breaks, whatever the
// mode: event type listed, source listed, a schema for dataVersion when the
// type has schemas, data valid against it. It returns nil when e passes.
// It does not check the envelope's own rules ([contracts.Envelope.Validate]).
func (c *Catalog) Inspect(e contracts.Envelope) *Violation {
	et := c.events[e.EventType]
	if et == nil {
		return &Violation{Kind: UnknownType, EventType: e.EventType, DataVersion: e.DataVersion,
			Field: "eventType", Reason: fmt.Sprintf("%q is not in the event catalog", e.EventType)}
	}
	if c.services[e.Source] == nil {
		return &Violation{Kind: UnknownSource, EventType: e.EventType, DataVersion: e.DataVersion,
			Field: "source", Reason: fmt.Sprintf("service %q is not in the event catalog", e.Source)}
	}
	if len(et.Versions) == 0 {
		return nil
	}
	ver := e.DataVersion
	if ver == "" {
		ver = contracts.DefaultDataVersion
	}
	v := et.Version(ver)
	if v == nil {
		return &Violation{Kind: UnknownVersion, EventType: e.EventType, DataVersion: ver,
			Field: "dataVersion", Reason: fmt.Sprintf("%s has no schema for dataVersion %q", e.EventType, ver)}
	}
	data := e.Data
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	doc, err := parseValue(data)
	if err != nil {
		doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)) // for its message
	}
	if err != nil {
		return &Violation{Kind: Schema, EventType: e.EventType, DataVersion: ver, Field: "data", Reason: "not JSON: " + err.Error()}
	}
	if err := v.compiled.Validate(doc); err != nil {
		field, reason := describe(err)
		return &Violation{Kind: Schema, EventType: e.EventType, DataVersion: ver, Field: field,
			Reason: fmt.Sprintf("%s (schema %s, dataVersion %s)", reason, v.SchemaFile, ver)}
	}
	return nil
}

// Check is the producer's rule, used by [contracts.New]'s callers and by
// outbox.Writer: it returns the [*Violation] of data that breaks its schema,
// and in strict mode of an unlisted type, source or dataVersion; in
// non-strict mode it logs those at warn level and returns nil.
func (c *Catalog) Check(e contracts.Envelope) error {
	v := c.Inspect(e)
	if v == nil {
		return nil
	}
	if v.Listed() && !c.strict {
		c.log.Warn("event not in the event catalog; strict mode would refuse it",
			"event_id", e.EventID, "event_type", e.EventType, "source", e.Source, "kind", string(v.Kind), "reason", v.Reason)
		return nil
	}
	return v
}

// New builds an envelope as [contracts.New] does and checks it with
// [Catalog.Check].
func (c *Catalog) New(eventType, aggregateID, source string, data any, opts ...contracts.Option) (contracts.Envelope, error) {
	e, err := contracts.New(eventType, aggregateID, source, data, opts...)
	if err != nil {
		return contracts.Envelope{}, err
	}
	if err := c.Check(e); err != nil {
		return contracts.Envelope{}, err
	}
	return e, nil
}

// describe turns a schema validation error into the path of the deepest
// offending member of data ("data.items.0.sku") and what is wrong there.
func describe(err error) (field, reason string) {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "data", err.Error()
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	loc := leaf.InstanceLocation
	if r, ok := leaf.ErrorKind.(*kind.Required); ok && len(r.Missing) > 0 {
		loc = append(append([]string(nil), loc...), r.Missing[0])
		return fieldPath(loc), "required, missing"
	}
	return fieldPath(loc), leaf.ErrorKind.LocalizedString(printer)
}

var printer = message.NewPrinter(language.English)

func fieldPath(loc []string) string {
	if len(loc) == 0 {
		return "data"
	}
	return "data." + strings.Join(loc, ".")
}
