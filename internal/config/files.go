package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kelseyhightower/envconfig"
)

// FileSuffix is appended to a variable's name to give it from a file: a
// secret (a Secret field, or one tagged `file:"true"`) NAME may be set as
// NAME_FILE=/path instead, the way container orchestrators mount secrets.
const FileSuffix = "_FILE"

// Source says where a variable's effective value came from.
type Source string

// Sources of a value, as `<binary> config` prints them.
const (
	SourceDefault Source = "default"
	SourceEnv     Source = "env"
	SourceFile    Source = "file"
)

// readFiles reads NAME_FILE for every file-capable variable that has one
// set and returns the values by NAME. Both NAME and NAME_FILE set is an
// error naming both; so is an unreadable or empty file. One trailing
// newline (as editors and `echo` leave it) is dropped.
func readFiles(vars []Var) (map[string]string, error) {
	values := make(map[string]string)
	for _, v := range vars {
		if !v.File {
			continue
		}
		fileVar := v.Name + FileSuffix
		path, ok := os.LookupEnv(fileVar)
		if !ok {
			continue
		}
		if _, both := os.LookupEnv(v.Name); both {
			return nil, &Error{Var: fileVar, Err: fmt.Errorf("%s is set too: set %s or %s, not both", v.Name, v.Name, fileVar)}
		}
		if strings.TrimSpace(path) == "" {
			return nil, &Error{Var: fileVar, Err: errEmpty}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			// The path is no secret; the file's contents never appear.
			return nil, &Error{Var: fileVar, Value: path, Err: errors.Unwrap(err)}
		}
		s := strings.TrimSuffix(string(b), "\n")
		s = strings.TrimSuffix(s, "\r")
		if strings.TrimSpace(s) == "" {
			return nil, &Error{Var: fileVar, Value: path, Err: errors.New("the file is empty")}
		}
		values[v.Name] = s
	}
	return values, nil
}

// setFromFiles stores the values read by readFiles into spec's fields.
func setFromFiles(spec any, vars []Var, values map[string]string) error {
	root := reflect.ValueOf(spec).Elem()
	for _, v := range vars {
		s, ok := values[v.Name]
		if !ok {
			continue
		}
		f, ok := fieldByVar(root, v.Name)
		if !ok {
			return fmt.Errorf("load configuration: no field for %s", v.Name)
		}
		if d, ok := f.Addr().Interface().(envconfig.Decoder); ok {
			if err := d.Decode(s); err != nil {
				return &Error{Var: v.Name + FileSuffix, Redacted: true, Err: err}
			}
			continue
		}
		if f.Kind() != reflect.String {
			return fmt.Errorf("load configuration: %s%s needs a string field", v.Name, FileSuffix)
		}
		f.SetString(s)
	}
	return nil
}

// fieldByVar finds the field of struct v whose envconfig tag is name,
// looking into anonymous embedded structs.
func fieldByVar(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			if fv, ok := fieldByVar(v.Field(i), name); ok {
				return fv, true
			}
			continue
		}
		if f.Tag.Get("envconfig") == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// SourceOf says where variable name's value comes from in the process
// environment: NAME_FILE, NAME, or the default.
func SourceOf(name string) Source {
	if _, ok := os.LookupEnv(name + FileSuffix); ok {
		return SourceFile
	}
	if _, ok := os.LookupEnv(name); ok {
		return SourceEnv
	}
	return SourceDefault
}

// productionVars are the connection variables whose defaults point at
// localhost: MESSAGEKIT_ENV=production refuses them.
var productionVars = []string{"DATABASE_URL", "AMQP_URL", "KAFKA_BROKERS"}

// checkProduction returns an *Error when MESSAGEKIT_ENV is production and
// one of productionVars that spec reads is left at its default or names
// localhost.
func checkProduction(spec any, vars []Var) error {
	root := reflect.ValueOf(spec).Elem()
	env, ok := fieldByVar(root, "MESSAGEKIT_ENV")
	if !ok || env.String() != EnvProduction {
		return nil
	}
	for _, v := range vars {
		if !contains(productionVars, v.Name) {
			continue
		}
		if SourceOf(v.Name) == SourceDefault {
			return &Error{Var: v.Name, Err: fmt.Errorf("must be set when MESSAGEKIT_ENV=production (the default %s is for development)", redactURL(v.Default))}
		}
		f, _ := fieldByVar(root, v.Name)
		for _, host := range hostsOf(v.Name, fmt.Sprint(f.Interface())) {
			if isLocal(host) {
				return &Error{Var: v.Name, Err: fmt.Errorf("points at %s, refused when MESSAGEKIT_ENV=production", host)}
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// hostsOf returns the hosts a connection variable's value points at.
func hostsOf(name, value string) []string {
	switch name {
	case "KAFKA_BROKERS":
		var hosts []string
		for _, b := range strings.Split(value, ",") {
			if h, _, err := net.SplitHostPort(strings.TrimSpace(b)); err == nil {
				hosts = append(hosts, h)
			}
		}
		return hosts
	case "DATABASE_URL":
		cfg, err := pgconn.ParseConfig(value)
		if err != nil {
			return nil
		}
		hosts := []string{cfg.Host}
		for _, fb := range cfg.Fallbacks {
			hosts = append(hosts, fb.Host)
		}
		return hosts
	default:
		u, err := url.Parse(value)
		if err != nil {
			return nil
		}
		return []string{u.Hostname()}
	}
}

func isLocal(host string) bool {
	if host == "localhost" || strings.HasPrefix(host, "/") { // a Unix socket is local too
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
