package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/config"
)

// spec is a binary-like config: the shared groups plus fields of its own.
type spec struct {
	config.Common
	config.Kafka
	config.AMQP
	HTTPAddr  config.ListenAddr `envconfig:"HTTP_ADDR" default:":9090" desc:"ops listen address"`
	Topics    config.List       `envconfig:"KAFKA_TOPICS" default:"events" desc:"topics"`
	DLQTopic  string            `envconfig:"KAFKA_DLQ_TOPIC" desc:"empty means <topic>.dlq"`
	BatchSize int               `envconfig:"BRIDGE_BATCH_SIZE" default:"500" desc:"batch size"`
	Token     config.Secret     `envconfig:"ADMIN_TOKEN" desc:"bearer token"`
}

func (s *spec) Validate() error {
	if s.BatchSize < 1 {
		return config.Invalid("BRIDGE_BATCH_SIZE", fmt.Sprint(s.BatchSize), "must be at least 1")
	}
	return nil
}

// env makes exactly vars visible among the spec's variables for this test.
func env(t *testing.T, vars map[string]string) {
	t.Helper()
	all, err := config.Vars(&spec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range all {
		t.Setenv(v.Name, "") // restores the old value at cleanup
		if err := os.Unsetenv(v.Name); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// TestLoadDefaults pins the defaults of the shared groups (DESIGN.md §5).
func TestLoadDefaults(t *testing.T) {
	env(t, nil)
	var s spec
	if err := config.Load(&s); err != nil {
		t.Fatal(err)
	}
	want := spec{
		Common: config.Common{
			DatabaseURL:     "postgres://localhost:5432/messagekit",
			ShutdownTimeout: 30 * time.Second,
		},
		Kafka:     config.Kafka{KafkaBrokers: config.Brokers{"localhost:9092"}},
		AMQP:      config.AMQP{AMQPURL: "amqp://guest:guest@localhost:5672/", AMQPDLX: "events.dlx"},
		HTTPAddr:  ":9090",
		Topics:    config.List{"events"},
		BatchSize: 500,
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Load() = %+v\nwant %+v", s, want)
	}
}

func TestLoadValues(t *testing.T) {
	env(t, map[string]string{
		"KAFKA_BROKERS":    " a:1 , b:2",
		"KAFKA_TOPICS":     "x,y",
		"LOG_LEVEL":        "DEBUG",
		"MIGRATE_ON_START": "true",
		"SHUTDOWN_TIMEOUT": "2s",
		"ADMIN_TOKEN":      "s3cret",
		"KAFKA_DLQ_TOPIC":  "",
	})
	var s spec
	if err := config.Load(&s); err != nil {
		t.Fatal(err)
	}
	if got := s.KafkaBrokers.String(); got != "a:1,b:2" {
		t.Errorf("brokers = %q", got)
	}
	if got := s.Topics.String(); got != "x,y" {
		t.Errorf("topics = %q", got)
	}
	if s.LogLevel.Level() != slog.LevelDebug || !s.MigrateOnStart || s.ShutdownTimeout != 2*time.Second {
		t.Errorf("common = %+v", s.Common)
	}
	if s.Token.Reveal() != "s3cret" || !s.Token.IsSet() {
		t.Errorf("token not loaded")
	}
}

// TestLoadErrors pins that every invalid value stops start-up with a message
// naming the variable, in particular a set-but-empty variable that has a
// default (envconfig alone would store the empty value).
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"empty brokers", map[string]string{"KAFKA_BROKERS": ""}, "KAFKA_BROKERS must not be empty"},
		{"blank brokers", map[string]string{"KAFKA_BROKERS": "  "}, "KAFKA_BROKERS must not be empty"},
		{"empty broker entry", map[string]string{"KAFKA_BROKERS": "a:1,,b:2"}, `invalid KAFKA_BROKERS "a:1,,b:2": entry 2 is empty`},
		{"broker without port", map[string]string{"KAFKA_BROKERS": "kafka"}, `invalid KAFKA_BROKERS "kafka": broker "kafka": want host:port`},
		{"broker port 0", map[string]string{"KAFKA_BROKERS": "kafka:0"}, `invalid KAFKA_BROKERS "kafka:0": broker "kafka:0": want a port from 1 to 65535`},
		{"http addr", map[string]string{"HTTP_ADDR": "nonsense"}, `invalid HTTP_ADDR "nonsense": want host:port`},
		{"http port range", map[string]string{"HTTP_ADDR": ":70000"}, `invalid HTTP_ADDR ":70000": port "70000": want a number from 0 to 65535`},
		{"http port name", map[string]string{"HTTP_ADDR": "localhost:http"}, `invalid HTTP_ADDR "localhost:http": port "http"`},
		{"empty http addr", map[string]string{"HTTP_ADDR": ""}, "HTTP_ADDR must not be empty"},
		{"empty topics", map[string]string{"KAFKA_TOPICS": ""}, "KAFKA_TOPICS must not be empty"},
		{"empty database url", map[string]string{"DATABASE_URL": ""}, "DATABASE_URL must not be empty"},
		{"bad database url", map[string]string{"DATABASE_URL": "postgres://u:pw@host:notaport/db"}, "invalid DATABASE_URL: "},
		{"duration", map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, `invalid SHUTDOWN_TIMEOUT "soon": want a duration`},
		{"zero duration", map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, `invalid SHUTDOWN_TIMEOUT "0s": must be positive`},
		{"bool", map[string]string{"MIGRATE_ON_START": "yes"}, `invalid MIGRATE_ON_START "yes": want true or false`},
		{"int", map[string]string{"BRIDGE_BATCH_SIZE": "many"}, `invalid BRIDGE_BATCH_SIZE "many": want an integer`},
		{"log level", map[string]string{"LOG_LEVEL": "verbose"}, `invalid LOG_LEVEL "verbose": want debug, info, warn or error`},
		{"amqp scheme", map[string]string{"AMQP_URL": "http://x/"}, "invalid AMQP_URL: AMQP scheme must be"},
		{"validate", map[string]string{"BRIDGE_BATCH_SIZE": "0"}, `invalid BRIDGE_BATCH_SIZE "0": must be at least 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env(t, tt.env)
			err := config.Load(&spec{})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Load() error = %v, want prefix %q", err, tt.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || !strings.Contains(tt.want, ce.Var) {
				t.Fatalf("Load() error %#v does not name the variable", err)
			}
		})
	}
}

// TestErrorsHidePasswords pins that a password in a URL never reaches an
// error message, even when the URL does not parse.
func TestErrorsHidePasswords(t *testing.T) {
	for _, env := range []map[string]string{
		{"AMQP_URL": "amqp://user:hunter2@host:5672/%zz"},
		{"AMQP_URL": "amqp://user:hunter2@ho st/"},
		{"AMQP_URL": "amqps://user:hunter2@host:notaport/"},
		{"DATABASE_URL": "postgres://user:hunter2@host:notaport/db"},
	} {
		t.Run(fmt.Sprint(env), func(t *testing.T) {
			t.Setenv("KAFKA_BROKERS", "a:1")
			for k, v := range env {
				t.Setenv(k, v)
			}
			err := config.Load(&spec{})
			if err == nil {
				t.Fatal("Load() succeeded")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
	e := &config.Error{Var: "X", Value: "amqp://u:hunter2@h/", Err: errors.New("bad")}
	if strings.Contains(e.Error(), "hunter2") {
		t.Fatalf("Error() leaks the password: %v", e)
	}
}

// TestSecretNeverPrinted pins that a Secret's value stays out of fmt and slog.
func TestSecretNeverPrinted(t *testing.T) {
	s := config.Secret("hunter2")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "token", s, "struct", struct{ T config.Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %+v %#v", s, s, s, s, s), buf.String()} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

func TestVarsAndUsage(t *testing.T) {
	vars, err := config.Vars(&spec{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vars {
		names = append(names, v.Name)
	}
	want := []string{"DATABASE_URL", "MIGRATE_ON_START", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "MESSAGEKIT_ENV",
		"KAFKA_BROKERS", "KAFKA_TLS", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "KAFKA_TLS_SERVER_NAME",
		"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
		"AMQP_URL", "AMQP_DLX", "AMQP_TLS_CA_FILE", "AMQP_TLS_CERT_FILE", "AMQP_TLS_KEY_FILE", "AMQP_TLS_SERVER_NAME",
		"HTTP_ADDR", "KAFKA_TOPICS", "KAFKA_DLQ_TOPIC", "BRIDGE_BATCH_SIZE", "ADMIN_TOKEN"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Vars() names = %v\nwant %v", names, want)
	}
	if last := vars[len(vars)-1]; !last.Secret || vars[0].Secret {
		t.Fatalf("Secret flags wrong: %+v", vars)
	}

	var buf bytes.Buffer
	if err := config.WriteUsage(&buf, &spec{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, v := range vars {
		if !strings.Contains(out, v.Name) || !strings.Contains(out, v.Description) {
			t.Errorf("usage lacks %s or its description:\n%s", v.Name, out)
		}
	}
	if !strings.Contains(out, "postgres://localhost:5432/messagekit") || !strings.Contains(out, "(none)") {
		t.Errorf("usage lacks defaults:\n%s", out)
	}

	if _, err := config.Vars(spec{}); err == nil {
		t.Error("Vars(non-pointer) succeeded")
	}
}

func TestListenAddrDecode(t *testing.T) {
	for _, ok := range []string{":9090", "127.0.0.1:0", "localhost:65535", "[::1]:8080", "0.0.0.0:80"} {
		var a config.ListenAddr
		if err := a.Decode(ok); err != nil || a.String() != ok {
			t.Errorf("Decode(%q) = %v, %q", ok, err, a)
		}
	}
	for _, bad := range []string{"", "9090", "host:", ":-1", ":65536", "::1:80", "a:b:c"} {
		var a config.ListenAddr
		if err := a.Decode(bad); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

func TestListDecode(t *testing.T) {
	var l config.List
	if err := l.Decode("a, b ,c"); err != nil || !reflect.DeepEqual(l, config.List{"a", "b", "c"}) {
		t.Fatalf("Decode = %v, %v", l, err)
	}
	for _, bad := range []string{"", " ", "a,", ",a", "a,,b"} {
		if err := new(config.List).Decode(bad); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}
