package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/kelseyhightower/envconfig"
)

// Error reports one invalid configuration variable. Load returns it (as
// error) for every problem it finds; Invalid builds one for Validate methods.
type Error struct {
	// Var is the environment variable, e.g. HTTP_ADDR.
	Var string
	// Value is the rejected value. Error leaves it out when Redacted is set
	// or it is empty, and masks the password of a URL.
	Value string
	// Redacted hides Value from Error, for secrets.
	Redacted bool
	// Err says what is wrong, e.g. "want host:port".
	Err error
}

// errEmpty marks a variable that is set to the empty string but needs a value.
var errEmpty = errors.New("must not be empty")

// Error returns a one-line message that starts with the variable's name or
// with "invalid <name>", e.g. `invalid HTTP_ADDR "nonsense": want host:port`
// or `KAFKA_BROKERS must not be empty`.
func (e *Error) Error() string {
	switch {
	case errors.Is(e.Err, errEmpty):
		return e.Var + " must not be empty"
	case e.Redacted || e.Value == "":
		return fmt.Sprintf("invalid %s: %v", e.Var, e.Err)
	default:
		return fmt.Sprintf("invalid %s %q: %v", e.Var, redactURL(e.Value), e.Err)
	}
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Err }

// Invalid returns an *Error for variable name with value and a reason such
// as "want drop or dlq", for use in Validate methods.
func Invalid(name, value, reason string) error {
	return &Error{Var: name, Value: value, Err: errors.New(reason)}
}

// Load fills spec, a pointer to a struct, from the environment (no prefix):
// each field's variable is its `envconfig` tag, its default the `default`
// tag. It returns an *Error naming the first invalid variable, including a
// variable with a default that is set but empty; then the error of the
// checks of the embedded groups (Common, Kafka, AMQP) and finally of spec's
// Validate method, if spec has one. Load reads the process environment and
// is safe for concurrent use only if nothing changes the environment.
func Load(spec any) error {
	vars, err := Vars(spec)
	if err != nil {
		return err
	}
	for _, v := range vars {
		if v.Default == "" {
			continue
		}
		if value, ok := os.LookupEnv(v.Name); ok && strings.TrimSpace(value) == "" {
			return &Error{Var: v.Name, Err: errEmpty}
		}
	}
	fromFiles, err := readFiles(vars)
	if err != nil {
		return err
	}
	if err := envconfig.Process("", spec); err != nil {
		var pe *envconfig.ParseError
		if !errors.As(err, &pe) {
			return fmt.Errorf("load configuration: %w", err)
		}
		secret := false
		for _, v := range vars {
			if v.Name == pe.KeyName {
				secret = v.Secret
			}
		}
		return &Error{Var: pe.KeyName, Value: pe.Value, Redacted: secret, Err: parseReason(pe)}
	}
	if err := setFromFiles(spec, vars, fromFiles); err != nil {
		return err
	}
	if err := checkGroups(reflect.ValueOf(spec).Elem()); err != nil {
		return err
	}
	if err := checkProduction(spec, vars); err != nil {
		return err
	}
	if v, ok := spec.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// parseReason turns envconfig's conversion error into a short "want ...".
func parseReason(pe *envconfig.ParseError) error {
	if errors.Is(pe.Err, errEmpty) {
		return pe.Err
	}
	switch pe.TypeName {
	case "bool":
		return errors.New("want true or false")
	case "time.Duration":
		return errors.New("want a duration such as 500ms, 30s or 1m")
	case "int", "int8", "int16", "int32", "int64":
		return errors.New("want an integer")
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return errors.New("want a non-negative integer")
	case "float32", "float64":
		return errors.New("want a number")
	}
	return pe.Err
}

// group is implemented by the embeddable groups of this package, whose
// checks Load runs itself so that a binary's own Validate need not call them.
type group interface{ check() error }

// checkGroups runs check on every anonymous embedded struct of v that is a
// group, depth first.
func checkGroups(v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.Anonymous || f.Type.Kind() != reflect.Struct || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if err := checkGroups(fv); err != nil {
			return err
		}
		if g, ok := fv.Addr().Interface().(group); ok {
			if err := g.check(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Var describes one configuration variable of a spec.
type Var struct {
	// Name is the environment variable.
	Name string
	// Default is the value used when the variable is unset; empty if none.
	Default string
	// Description is the field's `desc` tag.
	Description string
	// Secret is set for fields of type Secret.
	Secret bool
	// File is set for variables that may be given as NAME_FILE: fields of
	// type Secret and fields tagged `file:"true"`.
	File bool
}

var secretType = reflect.TypeFor[Secret]()

// Vars lists spec's variables in declaration order, as envconfig derives
// them (embedded structs flattened). spec must be a pointer to a struct;
// otherwise Vars returns envconfig.ErrInvalidSpecification.
func Vars(spec any) ([]Var, error) {
	var vars []Var
	collect := func(name string, tag reflect.StructTag, typ reflect.Type) string {
		vars = append(vars, Var{
			Name:        name,
			Default:     tag.Get("default"),
			Description: tag.Get("desc"),
			Secret:      typ == secretType,
			File:        typ == secretType || tag.Get("file") == "true",
		})
		return ""
	}
	// Usaget walks the spec exactly as Process does; the template only
	// collects what it is handed.
	tmpl := template.Must(template.New("vars").
		Funcs(template.FuncMap{"collect": collect}).
		Parse(`{{range .}}{{collect .Key .Tags .Field.Type}}{{end}}`))
	if err := envconfig.Usaget("", spec, io.Discard, tmpl); err != nil {
		return nil, err
	}
	return vars, nil
}

// WriteUsage writes a table of spec's variables (name, default and
// description), followed by extra rows, to w, indented by two spaces, for
// --help output. It returns Vars' error or w's.
func WriteUsage(w io.Writer, spec any, extra ...Var) error {
	vars, err := Vars(spec)
	if err != nil {
		return err
	}
	vars = append(vars, extra...)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tDESCRIPTION")
	for _, v := range vars {
		def := v.Default
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Description)
	}
	return tw.Flush()
}

// redactURL masks the password of s if s is a URL with one, and all of s
// if it looks like a URL with user info that does not parse.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return redacted
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}
