package config

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"text/tabwriter"
)

// Masked stands for a secret's value in WriteEffective's output.
const Masked = "***"

// Setting is one variable's effective value, as `<binary> config` prints it.
type Setting struct {
	Name string
	// Value is the value in effect, secrets and URL passwords as Masked.
	Value  string
	Source Source
}

// Effective returns the effective value and source of every variable of
// spec, which Load must have filled, in declaration order. A Secret
// shows as Masked (or empty when unset); a password in a URL or in a
// keyword=value connection string is Masked too.
func Effective(spec any) ([]Setting, error) {
	vars, err := Vars(spec)
	if err != nil {
		return nil, err
	}
	root := reflect.ValueOf(spec).Elem()
	settings := make([]Setting, 0, len(vars))
	for _, v := range vars {
		f, ok := fieldByVar(root, v.Name)
		if !ok {
			return nil, fmt.Errorf("effective configuration: no field for %s", v.Name)
		}
		var value string
		switch x := f.Interface().(type) {
		case Secret:
			if x.IsSet() {
				value = Masked
			}
		case fmt.Stringer:
			value = x.String()
		default:
			value = fmt.Sprint(x)
		}
		settings = append(settings, Setting{Name: v.Name, Value: maskPassword(value), Source: SourceOf(v.Name)})
	}
	return settings, nil
}

// WriteEffective writes Effective's settings to w as a table of name,
// value and source.
func WriteEffective(w io.Writer, spec any) error {
	settings, err := Effective(spec)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tSOURCE")
	for _, s := range settings {
		value := s.Value
		if value == "" {
			value = `""`
		}
		source := string(s.Source)
		if s.Source == SourceFile {
			source = "file (" + s.Name + FileSuffix + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, value, source)
	}
	return tw.Flush()
}

// keywordPassword matches password=… in a keyword/value connection string,
// quoted or not.
var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)`)

// maskPassword replaces the password of a URL, or of a keyword/value
// string, with Masked; a string that looks like a URL with user info but
// does not parse is masked whole.
func maskPassword(s string) string {
	if keywordPassword.MatchString(s) {
		s = keywordPassword.ReplaceAllString(s, "${1}"+Masked)
	}
	u, err := url.Parse(s)
	if err != nil {
		if redactURL(s) != s {
			return Masked
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), "PASSWORDMASK")
	out := u.String()
	return strings.Replace(out, "PASSWORDMASK", Masked, 1)
}
