package deployments_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/deployments/debezium"
	"github.com/firstunicorn/messagekit-go/internal/health"
)

// designVars are the variables of DESIGN.md §5 (a contract): a deployment
// sets each of them for every binary whose Config reads it.
var designVars = []string{
	"DATABASE_URL", "KAFKA_BROKERS", "KAFKA_TOPICS", "KAFKA_GROUP_ID", "KAFKA_DLQ_TOPIC",
	"AMQP_URL", "AMQP_EXCHANGE", "AMQP_DLX", "DLQ_KAFKA_TOPICS", "DLQ_QUEUES", "DLQ_BINDINGS",
	"OUTBOX_TOPIC", "HTTP_ADDR", "ADMIN_TOKEN", "ADMIN_READ_OPEN",
}

// externalVar reports whether a variable is read by a library rather than
// by a Config: the OpenTelemetry SDK's OTEL_* (DESIGN.md §5) and the Go
// runtime's.
// readsVar reports whether a binary with cfg reads name: one of its
// variables, or <NAME>_FILE for one that may come from a file.
func readsVar(cfg binaryConfig, name string) bool {
	if _, ok := cfg.Vars[name]; ok {
		return true
	}
	base, ok := strings.CutSuffix(name, "_FILE")
	return ok && cfg.Vars[base].File
}

func externalVar(name string) bool {
	return strings.HasPrefix(name, "OTEL_") || slices.Contains([]string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG"}, name)
}

// repoPath joins elem to the repository root; tests run in deployments/.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{".."}, elem...)...)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var modulePathOnce = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(repoPath("go.mod"))
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", fmt.Errorf("go.mod has no module line")
})

func modulePath(t *testing.T) string {
	t.Helper()
	m, err := modulePathOnce()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// configVar is one variable of a binary's Config.
type configVar struct {
	Name    string
	Default string
	// File: the variable may be given as <Name>_FILE (a config.Secret, or
	// tagged file:"true"; internal/config).
	File bool
}

// binaryConfig is what a binary's package says about its configuration.
type binaryConfig struct {
	// Vars are the envconfig variables of its type Config, embedded
	// structs included, by name.
	Vars map[string]configVar
	// ServiceMain: main calls internal/service.Main, which serves /healthz,
	// /readyz and /metrics on HTTP_ADDR.
	ServiceMain bool
	// Routes are the patterns the package registers itself with
	// Handle/HandleFunc (string literals), e.g. "GET /metrics".
	Routes []string
}

// serves reports whether the binary answers GET p on HTTP_ADDR.
func (c binaryConfig) serves(t *testing.T, p string) bool {
	t.Helper()
	if c.ServiceMain && served(t, p) {
		return true
	}
	return slices.Contains(c.Routes, p) || slices.Contains(c.Routes, "GET "+p)
}

// effective returns the value a binary runs with: env's, else the default.
func (c binaryConfig) effective(env map[string]string, name string) string {
	if v, ok := env[name]; ok {
		return v
	}
	return c.Vars[name].Default
}

// goPackage is the parsed source of one package directory (tests excluded).
type goPackage struct {
	files []*ast.File
	// structs by type name, each with the imports of its file (local
	// name -> import path).
	structs map[string]goStruct
}

type goStruct struct {
	fields  *ast.FieldList
	imports map[string]string
}

func parsePackage(dir string) (*goPackage, error) {
	entries, err := os.ReadDir(repoPath(dir))
	if err != nil {
		return nil, err
	}
	pkg := &goPackage{structs: map[string]goStruct{}}
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, repoPath(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		pkg.files = append(pkg.files, f)
		imports := map[string]string{}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			name := path.Base(p)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			imports[name] = p
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if st, ok := ts.Type.(*ast.StructType); ok {
					pkg.structs[ts.Name.Name] = goStruct{fields: st.Fields, imports: imports}
				}
			}
		}
	}
	if len(pkg.files) == 0 {
		return nil, fmt.Errorf("%s: no Go files", dir)
	}
	return pkg, nil
}

// loadBinaryConfig reads the envconfig variables of type Config in the
// package at dir (relative to the repository root) from its source, the way
// envconfig sees them: a field's envconfig tag, else its upper-cased name;
// embedded structs, also from other packages of this module, contribute
// their fields. Parsing rather than importing works for package main.
func loadBinaryConfig(t *testing.T, dir string) (binaryConfig, error) {
	t.Helper()
	mod := modulePath(t)
	cache := map[string]*goPackage{}
	load := func(dir string) (*goPackage, error) {
		if p, ok := cache[dir]; ok {
			return p, nil
		}
		p, err := parsePackage(dir)
		cache[dir] = p
		return p, err
	}
	cfg := binaryConfig{Vars: map[string]configVar{}}
	var collect func(dir, typ string, depth int) error
	collect = func(dir, typ string, depth int) error {
		if depth > 5 {
			return fmt.Errorf("%s.%s: embedding too deep", dir, typ)
		}
		pkg, err := load(dir)
		if err != nil {
			return err
		}
		st, ok := pkg.structs[typ]
		if !ok {
			return fmt.Errorf("%s: no struct type %s", dir, typ)
		}
		for _, f := range st.fields.List {
			var tag reflect.StructTag
			if f.Tag != nil {
				s, _ := strconv.Unquote(f.Tag.Value)
				tag = reflect.StructTag(s)
			}
			if tag.Get("ignored") == "true" {
				continue
			}
			if len(f.Names) == 0 { // embedded
				typExpr := f.Type
				if star, ok := typExpr.(*ast.StarExpr); ok {
					typExpr = star.X
				}
				switch x := typExpr.(type) {
				case *ast.Ident:
					err = collect(dir, x.Name, depth+1)
				case *ast.SelectorExpr:
					imp := st.imports[x.X.(*ast.Ident).Name]
					rel, ok := strings.CutPrefix(imp, mod+"/")
					if !ok {
						return fmt.Errorf("%s.%s embeds %s from outside the module", dir, typ, imp)
					}
					err = collect(rel, x.Sel.Name, depth+1)
				default:
					err = fmt.Errorf("%s.%s: unexpected embedded field %T", dir, typ, x)
				}
				if err != nil {
					return err
				}
				continue
			}
			for _, n := range f.Names {
				if !n.IsExported() {
					continue
				}
				key := tag.Get("envconfig")
				if key == "" {
					key = strings.ToUpper(n.Name)
				}
				secret := false
				switch x := f.Type.(type) {
				case *ast.SelectorExpr: // config.Secret in a binary's Config
					secret = x.Sel.Name == "Secret"
				case *ast.Ident: // Secret inside package config
					secret = x.Name == "Secret"
				}
				cfg.Vars[key] = configVar{Name: key, Default: tag.Get("default"), File: secret || tag.Get("file") == "true"}
			}
		}
		return nil
	}
	if err := collect(dir, "Config", 0); err != nil {
		return binaryConfig{}, err
	}
	pkg, _ := load(dir)
	for _, f := range pkg.files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") && len(call.Args) > 0 {
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					p, _ := strconv.Unquote(lit.Value)
					cfg.Routes = append(cfg.Routes, p)
				}
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Main" {
				if id, ok := sel.X.(*ast.Ident); ok {
					for _, imp := range f.Imports {
						p, _ := strconv.Unquote(imp.Path.Value)
						local := path.Base(p)
						if imp.Name != nil {
							local = imp.Name.Name
						}
						if local == id.Name && p == mod+"/internal/service" {
							cfg.ServiceMain = true
						}
					}
				}
			}
			return true
		})
	}
	return cfg, nil
}

// listenPort returns the port of a HTTP_ADDR value such as ":9090".
func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("HTTP_ADDR %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("HTTP_ADDR %q: %v", addr, err)
	}
	return n
}

// durationOf parses a duration setting such as SHUTDOWN_TIMEOUT.
func durationOf(t *testing.T, what, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s %q: %v", what, s, err)
	}
	return d
}

var servedMux = sync.OnceValues(func() (*http.ServeMux, error) {
	h, err := health.New(health.Config{Registry: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	h.Register(mux) // what internal/service serves on HTTP_ADDR for every binary
	return mux, nil
})

// served reports whether a binary run by internal/service answers GET p
// (with anything but 404 or 405: /readyz is 503 here, with no checks).
func served(t *testing.T, p string) bool {
	t.Helper()
	mux, err := servedMux()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
	return rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed
}

// connector is deployments/debezium/outbox-connector.json.
type connector struct {
	Name   string            `json:"name"`
	Config map[string]string `json:"config"`
}

func loadConnector(t *testing.T) connector {
	t.Helper()
	var c connector
	if err := json.Unmarshal(debezium.ConnectorJSON, &c); err != nil {
		t.Fatalf("outbox-connector.json: %v", err)
	}
	return c
}

// dockerStage is one stage of the Dockerfile.
type dockerStage struct {
	name   string
	base   string       // the FROM image, ARGs substituted
	parent *dockerStage // the stage base names, if any
	// builds maps a `go build -o DIR/` output directory to its packages.
	builds map[string][]string
	copies []dockerCopy
	user   string
	cmd    []string
}

type dockerCopy struct {
	from string
	srcs []string
	dst  string
}

// dockerfile is the parsed Dockerfile: what the tests need of it.
type dockerfile struct {
	stages       []*dockerStage
	instructions []string // every instruction keyword, upper case
	goBuilds     []string // every RUN line that runs go build
}

var argRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

func parseDockerfile(t *testing.T, name string) *dockerfile {
	t.Helper()
	df := &dockerfile{}
	args := map[string]string{}
	var cur *dockerStage
	var logical []string
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && b.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			b.WriteString(cont + " ")
			continue
		}
		b.WriteString(line)
		logical = append(logical, b.String())
		b.Reset()
	}
	for _, line := range logical {
		keyword, rest, _ := strings.Cut(line, " ")
		keyword = strings.ToUpper(keyword)
		rest = strings.TrimSpace(rest)
		df.instructions = append(df.instructions, keyword)
		switch keyword {
		case "ARG":
			if cur == nil {
				k, v, _ := strings.Cut(rest, "=")
				args[k] = strings.Trim(v, `"`)
			}
		case "FROM":
			f := strings.Fields(argRef.ReplaceAllStringFunc(rest, func(m string) string {
				sub := argRef.FindStringSubmatch(m)
				return args[sub[1]+sub[2]]
			}))
			cur = &dockerStage{base: f[0], builds: map[string][]string{}}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur.name = f[2]
			}
			for _, s := range df.stages {
				if s.name != "" && s.name == cur.base {
					cur.parent = s
				}
			}
			df.stages = append(df.stages, cur)
		case "RUN":
			if !strings.Contains(rest, "go build") {
				continue
			}
			df.goBuilds = append(df.goBuilds, rest)
			f := strings.Fields(rest)
			var out string
			var pkgs []string
			for i, w := range f {
				if w == "-o" && i+1 < len(f) {
					out = f[i+1]
				}
				if strings.HasPrefix(w, "./") {
					pkgs = append(pkgs, w)
				}
			}
			cur.builds[strings.TrimSuffix(out, "/")] = pkgs
		case "COPY":
			var c dockerCopy
			var words []string
			for _, w := range strings.Fields(rest) {
				if from, ok := strings.CutPrefix(w, "--from="); ok {
					c.from = from
				} else if !strings.HasPrefix(w, "--") {
					words = append(words, w)
				}
			}
			c.srcs, c.dst = words[:len(words)-1], words[len(words)-1]
			cur.copies = append(cur.copies, c)
		case "USER":
			cur.user = rest
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cur.cmd); err != nil {
				t.Fatalf("Dockerfile: CMD %s: want the exec form: %v", rest, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(df.stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	return df
}

func (df *dockerfile) stage(name string) *dockerStage {
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

// defaultTarget is the stage `docker build` without --target produces.
func (df *dockerfile) defaultTarget() *dockerStage { return df.stages[len(df.stages)-1] }

// binaries returns the programs a target stage installs on the PATH
// (/usr/local/bin), by name, each with its package directory.
func (df *dockerfile) binaries(target *dockerStage) map[string]string {
	out := map[string]string{}
	for _, c := range target.copies {
		if strings.TrimSuffix(c.dst, "/") != "/usr/local/bin" {
			continue
		}
		for s := df.stage(c.from); s != nil; s = s.parent {
			for _, src := range c.srcs {
				for _, pkg := range s.builds[strings.TrimSuffix(src, "/")] {
					out[path.Base(pkg)] = strings.TrimPrefix(pkg, "./")
				}
			}
		}
	}
	return out
}

// imageName strips the tag or digest of an image reference.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// sortedKeys returns m's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
