package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// FileError reports a catalog file that cannot be used: not valid TOML, a
// value of the wrong type, an unknown reference. Line is 0 when the error
// is about the file as a whole.
type FileError struct {
	// File is the path of the file inside the catalog, e.g. "events.toml".
	File string
	// Line is the 1-based line of Key, or of the syntax error.
	Line int
	// Key is the dotted TOML key at fault, e.g. `events."a.b.c".schemas`.
	Key string
	// Reason says what is wrong.
	Reason string
	// Err is the underlying cause, if any.
	Err error
}

// Error returns "<file>:<line>: <key>: <reason>".
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": key ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the underlying cause, possibly nil.
func (e *FileError) Unwrap() error { return e.Err }

// tomlFile is a parsed TOML document that can say on which line a key is.
type tomlFile struct {
	name  string
	data  map[string]any
	lines map[string]int // joinKey(path) → line of its first appearance
}

// parseTOML parses data, the contents of the catalog file name.
func parseTOML(name string, data []byte) (*tomlFile, error) {
	f := &tomlFile{name: name, lines: map[string]int{}}
	if err := toml.Unmarshal(data, &f.data); err != nil {
		fe := &FileError{File: name, Reason: err.Error(), Err: err}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			fe.Line, _ = de.Position()
			fe.Key = keyString(de.Key())
			fe.Reason = de.Error()
			if lines := bytes.Split(data, []byte("\n")); fe.Line > 0 && fe.Line <= len(lines) {
				fe.Reason += fmt.Sprintf(" in %q", bytes.TrimSpace(lines[fe.Line-1]))
			}
		}
		return nil, fe
	}
	f.index(data)
	return f, nil
}

// index records the line of every key and table header of a valid document.
func (f *tomlFile) index(data []byte) {
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = f.record(&p, nil, e.Key())
		case unstable.KeyValue:
			f.keyValue(&p, table, e)
		}
	}
}

// keyValue records a key/value's key under table, and the keys of an
// inline table value.
func (f *tomlFile) keyValue(p *unstable.Parser, table []string, e *unstable.Node) {
	path := f.record(p, table, e.Key())
	if v := e.Value(); v != nil && v.Kind == unstable.InlineTable {
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				f.keyValue(p, path, kv)
			}
		}
	}
}

// record records the line of every prefix of prefix+key and returns the
// whole path.
func (f *tomlFile) record(p *unstable.Parser, prefix []string, key unstable.Iterator) []string {
	path := append([]string(nil), prefix...)
	for key.Next() {
		n := key.Node()
		path = append(path, string(n.Data))
		k := joinKey(path)
		if _, ok := f.lines[k]; !ok {
			f.lines[k] = p.Shape(n.Raw).Start.Line
		}
	}
	return path
}

// line returns the line of path, or of its longest prefix that has one.
func (f *tomlFile) line(path ...string) int {
	for n := len(path); n > 0; n-- {
		if l, ok := f.lines[joinKey(path[:n])]; ok {
			return l
		}
	}
	return 0
}

// errorf returns a *FileError about the key path.
func (f *tomlFile) errorf(path []string, format string, args ...any) *FileError {
	return &FileError{File: f.name, Line: f.line(path...), Key: keyString(path), Reason: fmt.Sprintf(format, args...)}
}

func joinKey(path []string) string { return strings.Join(path, "\x00") }

// keyString writes path as a TOML dotted key, quoting the parts that need it.
func keyString(path []string) string {
	parts := make([]string, len(path))
	for i, k := range path {
		parts[i] = k
		if k == "" || strings.ContainsFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			parts[i] = fmt.Sprintf("%q", k)
		}
	}
	return strings.Join(parts, ".")
}
