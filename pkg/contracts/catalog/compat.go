package catalog

import (
	"fmt"
	"slices"
	"strings"
)

// Rule names a kind of difference between two catalogs.
type Rule string

// Rules of [Compare]. The first six are breaking: a consumer written
// against the old catalog may fail on events that follow the new one. The
// others are additive.
const (
	EventTypeRemoved Rule = "event type removed"
	VersionRemoved   Rule = "schema version removed"
	FieldRemoved     Rule = "field removed"
	TypeChanged      Rule = "type changed"
	NewlyRequired    Rule = "newly required field"
	EnumValueRemoved Rule = "enum value removed"
	EventTypeAdded   Rule = "event type added"
	VersionAdded     Rule = "schema version added"
	FieldAdded       Rule = "optional field added"
	EnumValueAdded   Rule = "enum value added"
	NoLongerRequired Rule = "field no longer required"
)

var breaking = map[Rule]bool{
	EventTypeRemoved: true, VersionRemoved: true, FieldRemoved: true,
	TypeChanged: true, NewlyRequired: true, EnumValueRemoved: true,
}

// Change is one difference between two catalogs.
type Change struct {
	// Rule is the kind of change.
	Rule Rule
	// EventType and DataVersion say where; DataVersion is empty for a
	// change of the event type as a whole.
	EventType, DataVersion string
	// Field is the path of the field in data ("total.currency",
	// "items[].sku"); empty for the schema as a whole.
	Field string
	// Detail says what changed, e.g. `"string" → "integer"`.
	Detail string
}

// Breaking reports whether the change may break consumers of the old
// catalog.
func (c Change) Breaking() bool { return breaking[c.Rule] }

// String returns one line: "orders.order.created 1.0 total.currency: enum value removed ("GBP")".
func (c Change) String() string {
	var b strings.Builder
	b.WriteString(c.EventType)
	if c.DataVersion != "" {
		b.WriteString(" " + c.DataVersion)
	}
	if c.Field != "" {
		b.WriteString(" " + c.Field)
	}
	b.WriteString(": " + string(c.Rule))
	if c.Detail != "" {
		b.WriteString(" (" + c.Detail + ")")
	}
	return b.String()
}

// Compare lists the differences between the catalogs old and new that
// matter to consumers, in event type, version and field order. Breaking
// ones ([Change.Breaking]): an event type or a schema version removed, and
// in a schema kept, a field removed, a field's type changed, a field newly
// required, an enum value removed. The others are additive: an event type,
// a version, an optional field or an enum value added, a field no longer
// required. Nested objects and array items are compared too; $refs inside
// the catalog are followed.
func Compare(old, new *Catalog) []Change {
	var out []Change
	for _, oe := range old.Events() {
		ne := new.Event(oe.Name)
		if ne == nil {
			out = append(out, Change{Rule: EventTypeRemoved, EventType: oe.Name})
			continue
		}
		for _, ov := range oe.Versions {
			nv := ne.Version(ov.DataVersion)
			if nv == nil {
				out = append(out, Change{Rule: VersionRemoved, EventType: oe.Name, DataVersion: ov.DataVersion})
				continue
			}
			d := differ{old: old, new: new, eventType: oe.Name, version: ov.DataVersion}
			d.schema("", old.deref(old.root(ov)), new.deref(new.root(nv)))
			out = append(out, d.out...)
		}
		for _, nv := range ne.Versions {
			if oe.Version(nv.DataVersion) == nil {
				out = append(out, Change{Rule: VersionAdded, EventType: oe.Name, DataVersion: nv.DataVersion})
			}
		}
	}
	for _, ne := range new.Events() {
		if old.Event(ne.Name) == nil {
			out = append(out, Change{Rule: EventTypeAdded, EventType: ne.Name})
		}
	}
	return out
}

// Breaking returns the breaking changes of changes.
func Breaking(changes []Change) []Change {
	var out []Change
	for _, c := range changes {
		if c.Breaking() {
			out = append(out, c)
		}
	}
	return out
}

type differ struct {
	old, new           *Catalog
	eventType, version string
	out                []Change
}

func (d *differ) add(rule Rule, field, format string, args ...any) {
	d.out = append(d.out, Change{Rule: rule, EventType: d.eventType, DataVersion: d.version, Field: field, Detail: fmt.Sprintf(format, args...)})
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// schema compares the schemas o and n of the field at path.
func (d *differ) schema(path string, o, n node) {
	if ot, nt := types(o), types(n); ot != nil && !slices.Equal(ot, nt) {
		d.add(TypeChanged, path, "%s → %s", typeList(ot), typeList(nt))
	}
	if oe, ok := enum(o); ok {
		ne, nok := enum(n)
		for _, v := range oe {
			if nok && !slices.Contains(ne, v) {
				d.add(EnumValueRemoved, path, "%s", v)
			}
		}
		if nok {
			for _, v := range ne {
				if !slices.Contains(oe, v) {
					d.add(EnumValueAdded, path, "%s", v)
				}
			}
		}
	}
	op, np := d.old.properties(o), d.new.properties(n)
	oreq, nreq := required(o), required(n)
	for _, name := range sortedKeys(op) {
		field := join(path, name)
		nn, ok := np[name]
		if !ok {
			d.add(FieldRemoved, field, "")
			continue
		}
		d.schema(field, op[name], nn)
	}
	for _, name := range sortedKeys(nreq) {
		if !oreq[name] {
			d.add(NewlyRequired, join(path, name), "")
		}
	}
	for _, name := range sortedKeys(oreq) {
		if !nreq[name] {
			if _, still := np[name]; still {
				d.add(NoLongerRequired, join(path, name), "")
			}
		}
	}
	for _, name := range sortedKeys(np) {
		if _, ok := op[name]; !ok && !nreq[name] {
			d.add(FieldAdded, join(path, name), "")
		}
	}
	if oi, ok := d.old.items(o); ok {
		if ni, ok := d.new.items(n); ok {
			d.schema(path+"[]", oi, ni)
		}
	}
}

func typeList(t []string) string {
	if len(t) == 0 {
		return "any"
	}
	return strings.Join(t, "|")
}
