package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// File names of a catalog.
const (
	EventsFile   = "events.toml"
	ServicesFile = "services.toml"
)

var (
	eventTypeRE = regexp.MustCompile(contracts.EventTypePattern)
	sourceRE    = regexp.MustCompile(contracts.SourcePattern)
)

// Options configure [Load].
type Options struct {
	// Strict refuses events whose type, source or dataVersion the catalog
	// does not list (EVENT_CATALOG_STRICT_MODE); false logs a warning.
	Strict bool
	// Logger receives the warnings of non-strict mode; nil discards them.
	Logger *slog.Logger
}

// Catalog is a loaded event catalog. It is immutable and safe for
// concurrent use.
type Catalog struct {
	events   map[string]*EventType
	services map[string]*Service
	strict   bool
	log      *slog.Logger
	fsys     fs.FS // for the documents a schema's $ref names
	// Revision names what was loaded: a commit hash for a git catalog,
	// empty for a directory.
	Revision string
}

// EventType is one entry of events.toml.
type EventType struct {
	// Name is the event type, e.g. "orders.order.created".
	Name string
	// OwnerService, OwnerTeam and Description are the entry's
	// owner_service, owner_team and description.
	OwnerService, OwnerTeam, Description string
	// Versions are the dataVersions that have a schema, sorted.
	Versions []*Version
}

// Version is one schema of an event type.
type Version struct {
	// DataVersion is the envelope's dataVersion, e.g. "1.0".
	DataVersion string
	// SchemaFile is the schema's path inside the catalog.
	SchemaFile string
	// Schema is the schema document as written.
	Schema []byte

	compiled *jsonschema.Schema
	doc      any
}

// Service is one entry of services.toml.
type Service struct {
	// Name is the service name, the envelope's source.
	Name string
	// Team, Repository and Description are the entry's team, repository
	// and description.
	Team, Repository, Description string
	// EventsPublished is the entry's events_published.
	EventsPublished []string
}

// Load reads the catalog at the root of fsys: events.toml (required),
// services.toml (optional: without it no source is listed) and the schema
// files events.toml names, compiling every schema. It returns a
// [*FileError] naming the file, line and key of the first problem.
func Load(fsys fs.FS, opts Options) (*Catalog, error) {
	c := &Catalog{events: map[string]*EventType{}, services: map[string]*Service{}, strict: opts.Strict, log: opts.Logger, fsys: fsys}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	data, err := fs.ReadFile(fsys, EventsFile)
	if err != nil {
		return nil, &FileError{File: EventsFile, Reason: "cannot read: " + err.Error(), Err: err}
	}
	ev, err := parseTOML(EventsFile, data)
	if err != nil {
		return nil, err
	}
	compiler := newCompiler(fsys)
	if err := entries(ev, "events", eventTypeRE, "an event type (domain.entity.event)", func(name string, path []string, t map[string]any) error {
		return c.addEvent(ev, compiler, name, path, t)
	}); err != nil {
		return nil, err
	}
	data, err = fs.ReadFile(fsys, ServicesFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, &FileError{File: ServicesFile, Reason: "cannot read: " + err.Error(), Err: err}
	default:
		sv, err := parseTOML(ServicesFile, data)
		if err != nil {
			return nil, err
		}
		if err := entries(sv, "services", sourceRE, "a service name (lowercase-with-hyphens)", func(name string, path []string, t map[string]any) error {
			return c.addService(sv, name, path, t)
		}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// entries calls add for every entry of f under section: the tables of
// [section] and the top-level keys "<section>.<name>". Other top-level keys
// are left alone, as the Python messagekit does.
func entries(f *tomlFile, section string, nameRE *regexp.Regexp, what string, add func(name string, path []string, t map[string]any) error) error {
	seen := map[string][]string{}
	one := func(name string, path []string, v any) error {
		if !nameRE.MatchString(name) {
			hint := ""
			if _, isTable := v.(map[string]any); isTable && section == "events" {
				hint = fmt.Sprintf(`; quote a dotted name: [events."%s.…"]`, name)
			}
			return f.errorf(path, "%q is not %s%s", name, what, hint)
		}
		t, ok := v.(map[string]any)
		if !ok {
			return f.errorf(path, "want a table, got %s", tomlKind(v))
		}
		if prev, dup := seen[name]; dup {
			return f.errorf(path, "%s is listed twice (also as %s)", name, keyString(prev))
		}
		seen[name] = path
		return add(name, path, t)
	}
	keys := sortedKeys(f.data)
	for _, k := range keys {
		v := f.data[k]
		if k == section {
			t, ok := v.(map[string]any)
			if !ok {
				return f.errorf([]string{k}, "want a table, got %s", tomlKind(v))
			}
			for _, name := range sortedKeys(t) {
				if err := one(name, []string{k, name}, t[name]); err != nil {
					return err
				}
			}
			continue
		}
		if name, ok := strings.CutPrefix(k, section+"."); ok {
			if err := one(name, []string{k}, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Catalog) addEvent(f *tomlFile, compiler *compiler, name string, at []string, t map[string]any) error {
	e := &EventType{Name: name}
	for _, field := range []struct {
		key string
		dst *string
	}{{"owner_service", &e.OwnerService}, {"owner_team", &e.OwnerTeam}, {"description", &e.Description}} {
		if err := stringField(f, at, t, field.key, field.dst); err != nil {
			return err
		}
	}
	if raw, ok := t["schemas"]; ok {
		sp := append(append([]string(nil), at...), "schemas")
		schemas, ok := raw.(map[string]any)
		if !ok {
			return f.errorf(sp, "want a table of dataVersion = \"schema file\", got %s", tomlKind(raw))
		}
		for _, ver := range sortedKeys(schemas) {
			vp := append(append([]string(nil), sp...), ver)
			file, ok := schemas[ver].(string)
			if !ok {
				return f.errorf(vp, "want the path of a schema file, got %s", tomlKind(schemas[ver]))
			}
			clean := path.Clean(file)
			if path.IsAbs(file) || clean == ".." || strings.HasPrefix(clean, "../") || !fs.ValidPath(clean) {
				return f.errorf(vp, "schema file %q is outside the catalog", file)
			}
			v, err := compiler.compile(clean)
			if err != nil {
				fe := f.errorf(vp, "schema file %s: %v", clean, err)
				fe.Err = err
				return fe
			}
			v.DataVersion = ver
			e.Versions = append(e.Versions, v)
		}
	}
	c.events[name] = e
	return nil
}

func (c *Catalog) addService(f *tomlFile, name string, path []string, t map[string]any) error {
	s := &Service{Name: name}
	for _, field := range []struct {
		key string
		dst *string
	}{{"team", &s.Team}, {"repository", &s.Repository}, {"description", &s.Description}} {
		if err := stringField(f, path, t, field.key, field.dst); err != nil {
			return err
		}
	}
	if raw, ok := t["events_published"]; ok {
		list, ok := raw.([]any)
		if !ok {
			return f.errorf(append(append([]string(nil), path...), "events_published"), "want an array of event types, got %s", tomlKind(raw))
		}
		for _, item := range list {
			et, ok := item.(string)
			if !ok {
				return f.errorf(append(append([]string(nil), path...), "events_published"), "want an array of event types, got an element that is %s", tomlKind(item))
			}
			s.EventsPublished = append(s.EventsPublished, et)
		}
	}
	c.services[name] = s
	return nil
}

func stringField(f *tomlFile, path []string, t map[string]any, key string, dst *string) error {
	raw, ok := t[key]
	if !ok {
		return nil
	}
	s, ok := raw.(string)
	if !ok {
		return f.errorf(append(append([]string(nil), path...), key), "want a string, got %s", tomlKind(raw))
	}
	*dst = s
	return nil
}

func tomlKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a table"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Strict reports whether the catalog refuses what it does not list.
func (c *Catalog) Strict() bool { return c.strict }

// Event returns the entry of an event type, or nil.
func (c *Catalog) Event(eventType string) *EventType { return c.events[eventType] }

// Service returns the entry of a service, or nil.
func (c *Catalog) Service(name string) *Service { return c.services[name] }

// Events returns every event type, sorted by name.
func (c *Catalog) Events() []*EventType {
	out := make([]*EventType, 0, len(c.events))
	for _, k := range sortedKeys(c.events) {
		out = append(out, c.events[k])
	}
	return out
}

// Services returns every service, sorted by name.
func (c *Catalog) Services() []*Service {
	out := make([]*Service, 0, len(c.services))
	for _, k := range sortedKeys(c.services) {
		out = append(out, c.services[k])
	}
	return out
}

// Version returns the schema of dataVersion, or nil.
func (e *EventType) Version(dataVersion string) *Version {
	for _, v := range e.Versions {
		if v.DataVersion == dataVersion {
			return v
		}
	}
	return nil
}

// Doc returns the schema document decoded as the JSON Schema compiler saw
// it (maps, slices, json.Number…). Do not modify it.
func (v *Version) Doc() any { return v.doc }

// compiler compiles the schema files of one load, each file once.
type compiler struct {
	fsys  fs.FS
	c     *jsonschema.Compiler
	cache map[string]*Version
}

// schemeBase is the URL every catalog file is known by to the JSON Schema
// compiler, so that a schema's relative $ref resolves inside the catalog.
const schemeBase = "catalog:///"

func newCompiler(fsys fs.FS) *compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	cc := &compiler{fsys: fsys, c: c, cache: map[string]*Version{}}
	c.UseLoader(jsonschema.SchemeURLLoader{"catalog": catalogLoader{fsys}})
	return cc
}

func (cc *compiler) compile(file string) (*Version, error) {
	if v, ok := cc.cache[file]; ok {
		cp := *v
		return &cp, nil
	}
	raw, err := fs.ReadFile(cc.fsys, file)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	sch, err := cc.c.Compile(schemeBase + file)
	if err != nil {
		return nil, err
	}
	v := &Version{SchemaFile: file, Schema: raw, compiled: sch, doc: doc}
	cc.cache[file] = v
	cp := *v
	return &cp, nil
}

// catalogLoader loads catalog:/// URLs from the catalog's files.
type catalogLoader struct{ fsys fs.FS }

func (l catalogLoader) Load(url string) (any, error) {
	name, ok := strings.CutPrefix(url, schemeBase)
	if !ok || !fs.ValidPath(name) {
		return nil, fmt.Errorf("%s is outside the catalog", url)
	}
	raw, err := fs.ReadFile(l.fsys, name)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}
