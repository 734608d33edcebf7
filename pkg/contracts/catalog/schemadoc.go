package catalog

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// node is a schema document with the file it was read from, so that a
// relative $ref resolves against it.
type node struct {
	file string
	v    map[string]any
}

// root returns the schema of v as a node.
func (c *Catalog) root(v *Version) node {
	m, _ := v.doc.(map[string]any)
	return node{file: v.SchemaFile, v: m}
}

// deref follows n's $ref chain (at most 32 steps) inside the catalog. A
// $ref it cannot follow leaves n as it is.
func (c *Catalog) deref(n node) node {
	for range 32 {
		ref, ok := n.v["$ref"].(string)
		if !ok {
			return n
		}
		file, frag, _ := strings.Cut(ref, "#")
		target := n.file
		if file != "" {
			target = path.Join(path.Dir(n.file), file)
		}
		doc, err := c.readDoc(target)
		if err != nil {
			return n
		}
		v, ok := pointer(doc, frag)
		if !ok {
			return n
		}
		next := node{file: target, v: v}
		// Keywords beside $ref (2020-12 allows them), e.g. a description, win.
		merged := map[string]any{}
		for k, x := range next.v {
			merged[k] = x
		}
		for k, x := range n.v {
			if k != "$ref" {
				merged[k] = x
			}
		}
		next.v = merged
		n = next
	}
	return n
}

func (c *Catalog) readDoc(file string) (any, error) {
	for _, et := range c.events {
		for _, v := range et.Versions {
			if v.SchemaFile == file {
				return v.doc, nil
			}
		}
	}
	if c.fsys == nil {
		return nil, fs.ErrNotExist
	}
	raw, err := fs.ReadFile(c.fsys, file)
	if err != nil {
		return nil, err
	}
	return unmarshal(raw)
}

// pointer resolves a JSON pointer fragment ("/$defs/x") in doc.
func pointer(doc any, frag string) (map[string]any, bool) {
	cur := doc
	if frag != "" && frag != "/" {
		for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch x := cur.(type) {
			case map[string]any:
				cur = x[tok]
			case []any:
				i, err := strconv.Atoi(tok)
				if err != nil || i < 0 || i >= len(x) {
					return nil, false
				}
				cur = x[i]
			default:
				return nil, false
			}
		}
	}
	m, ok := cur.(map[string]any)
	return m, ok
}

// types returns the schema's JSON types, sorted; nil when it names none.
func types(n node) []string {
	switch t := n.v["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// properties returns the schema's properties by name.
func (c *Catalog) properties(n node) map[string]node {
	props, _ := n.v["properties"].(map[string]any)
	out := make(map[string]node, len(props))
	for name, p := range props {
		if m, ok := p.(map[string]any); ok {
			out[name] = c.deref(node{file: n.file, v: m})
		}
	}
	return out
}

// items returns the schema of an array's elements, if it has one.
func (c *Catalog) items(n node) (node, bool) {
	m, ok := n.v["items"].(map[string]any)
	if !ok {
		return node{}, false
	}
	return c.deref(node{file: n.file, v: m}), true
}

func required(n node) map[string]bool {
	out := map[string]bool{}
	list, _ := n.v["required"].([]any)
	for _, x := range list {
		if s, ok := x.(string); ok {
			out[s] = true
		}
	}
	return out
}

// enum returns the schema's enum values in their JSON spelling.
func enum(n node) ([]string, bool) {
	list, ok := n.v["enum"].([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(list))
	for i, x := range list {
		out[i] = jsonString(x)
	}
	return out, true
}

func jsonString(x any) string {
	switch v := x.(type) {
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	default:
		return fmt.Sprint(v)
	}
}

func description(n node) string {
	s, _ := n.v["description"].(string)
	return s
}

func unmarshal(raw []byte) (any, error) {
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}
