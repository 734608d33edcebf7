package catalog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes the catalog as a Markdown document: a table of every
// event type with its owner service and versions, then per event type its
// description, owner, and per version the schema file, the fields of data
// (nested ones by dotted path, array elements as name[]) with their types,
// whether they are required, and their descriptions, and an example: the
// schema's first "examples" entry, or one made up from the field types. The
// output depends only on the catalog, so it can be checked in and diffed.
func WriteMarkdown(w io.Writer, c *Catalog) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("# Event catalog\n\n")
	p("Generated from events.toml and services.toml by `mkctl catalog doc`; do not edit.\n\n")
	p("| Event type | Owner service | Team | Versions |\n|---|---|---|---|\n")
	for _, e := range c.Events() {
		p("| [`%s`](#%s) | %s | %s | %s |\n", e.Name, anchor(e.Name), code(e.OwnerService), cell(e.OwnerTeam), versions(e))
	}
	for _, e := range c.Events() {
		p("\n## %s\n\n", e.Name)
		if e.Description != "" {
			p("%s\n\n", e.Description)
		}
		p("- Owner service: %s", code(e.OwnerService))
		if e.OwnerTeam != "" {
			p(" (team %s)", e.OwnerTeam)
		}
		p("\n")
		if s := c.Service(e.OwnerService); s != nil && s.Repository != "" {
			p("- Repository: %s\n", s.Repository)
		}
		if len(e.Versions) == 0 {
			p("\nNo schema: data is not validated.\n")
			continue
		}
		for _, v := range e.Versions {
			p("\n### dataVersion %s\n\nSchema: `%s`\n\n", v.DataVersion, v.SchemaFile)
			root := c.deref(c.root(v))
			if d := description(root); d != "" {
				p("%s\n\n", d)
			}
			p("| Field | Type | Required | Description |\n|---|---|---|---|\n")
			for _, f := range c.fields("", root) {
				req := ""
				if f.required {
					req = "yes"
				}
				p("| `%s` | %s | %s | %s |\n", f.path, f.typ, req, cell(f.desc))
			}
			example, err := json.MarshalIndent(c.example(root), "", "  ")
			if err != nil {
				return err
			}
			p("\nExample `data`:\n\n```json\n%s\n```\n", example)
		}
	}
	return bw.Flush()
}

func versions(e *EventType) string {
	var vs []string
	for _, v := range e.Versions {
		vs = append(vs, v.DataVersion)
	}
	if len(vs) == 0 {
		return "no schema"
	}
	return strings.Join(vs, ", ")
}

func anchor(s string) string { return strings.ReplaceAll(s, ".", "") }

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

type field struct {
	path, typ, desc string
	required        bool
}

// fields flattens the properties of n, depth first in name order.
func (c *Catalog) fields(prefix string, n node) []field {
	var out []field
	props, req := c.properties(n), required(n)
	for _, name := range sortedKeys(props) {
		p := props[name]
		f := field{path: join(prefix, name), typ: typeDoc(p), desc: description(p), required: req[name]}
		out = append(out, f)
		out = append(out, c.fields(f.path, p)...)
		if it, ok := c.items(p); ok {
			out = append(out, c.fields(f.path+"[]", it)...)
		}
	}
	return out
}

func typeDoc(n node) string {
	t := typeList(types(n))
	if vals, ok := enum(n); ok {
		t += " (" + strings.Join(vals, ", ") + ")"
	}
	if f, ok := n.v["format"].(string); ok {
		t += ", " + f
	}
	return strings.ReplaceAll(t, "|", " or ")
}

// example returns the schema's first example, or a value made up from it.
func (c *Catalog) example(n node) any {
	if ex, ok := n.v["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	if vals, ok := n.v["enum"].([]any); ok && len(vals) > 0 {
		return vals[0]
	}
	ts := types(n)
	t := ""
	if len(ts) > 0 {
		t = ts[0]
	}
	switch {
	case t == "object" || n.v["properties"] != nil:
		obj := map[string]any{}
		for name, p := range c.properties(n) {
			obj[name] = c.example(p)
		}
		return obj
	case t == "array":
		if it, ok := c.items(n); ok {
			return []any{c.example(it)}
		}
		return []any{}
	case t == "string":
		if f, _ := n.v["format"].(string); f == "date-time" {
			return "2026-01-01T00:00:00Z"
		}
		return "string"
	case t == "integer":
		return 0
	case t == "number":
		return 0.5
	case t == "boolean":
		return true
	}
	return nil
}
