package main

import (
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var configVariables = []string{"DATABASE_URL", "HTTP_ADDR", "KAFKA_BROKERS", "OUTBOX_TOPIC", "RELAY_ENABLED", "LOG_LEVEL", "RETENTION_OUTBOX", "PRUNE_INTERVAL"}

// setEnv clears the configuration variables for this test, then sets vars
// ("NAME=value").
func setEnv(t *testing.T, vars ...string) {
	t.Helper()
	for _, name := range configVariables {
		t.Setenv(name, "") // restores the original value after the test
		_ = os.Unsetenv(name)
	}
	for _, v := range vars {
		name, value, _ := strings.Cut(v, "=")
		t.Setenv(name, value)
	}
}

// The defaults are the documented ones (the deployment files rely on them).
func TestConfigDefaults(t *testing.T) {
	setEnv(t)
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DatabaseURL:     "postgres://localhost:5432/messagekit",
		HTTPAddr:        ":8081",
		KafkaBrokers:    []string{"localhost:9092"},
		OutboxTopic:     "events",
		RelayEnabled:    true,
		LogLevel:        slog.LevelInfo,
		RetentionOutbox: 720 * time.Hour,
		PruneInterval:   5 * time.Minute,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("defaults %+v, want %+v", cfg, want)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	setEnv(t, "DATABASE_URL=postgres://db/sales", "HTTP_ADDR=127.0.0.1:9000", "KAFKA_BROKERS=k1:9092, k2:9092",
		"OUTBOX_TOPIC=sales.events", "RELAY_ENABLED=false", "LOG_LEVEL=debug", "RETENTION_OUTBOX=48h", "PRUNE_INTERVAL=0")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DatabaseURL:     "postgres://db/sales",
		HTTPAddr:        "127.0.0.1:9000",
		KafkaBrokers:    []string{"k1:9092", "k2:9092"},
		OutboxTopic:     "sales.events",
		RelayEnabled:    false,
		LogLevel:        slog.LevelDebug,
		RetentionOutbox: 48 * time.Hour,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config %+v, want %+v", cfg, want)
	}
}

// An invalid value is reported with the name of its variable.
func TestConfigInvalid(t *testing.T) {
	for _, v := range []string{
		"LOG_LEVEL=loud",
		"RELAY_ENABLED=maybe",
		"HTTP_ADDR=nonsense",
		"DATABASE_URL=",
		"DATABASE_URL=postgres://h:badport/db",
		"KAFKA_BROKERS=",
		"KAFKA_BROKERS=no-port",
		"OUTBOX_TOPIC=two words",
	} {
		t.Run(v, func(t *testing.T) {
			setEnv(t, v)
			name, _, _ := strings.Cut(v, "=")
			if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("loadConfig = %v, want an error naming %s", err, name)
			}
		})
	}
	// Kafka settings do not matter when Debezium publishes.
	setEnv(t, "RELAY_ENABLED=false", "KAFKA_BROKERS=")
	if _, err := loadConfig(); err != nil {
		t.Fatalf("RELAY_ENABLED=false without brokers: %v", err)
	}
}
