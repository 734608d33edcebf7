package main

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

var configVariables = []string{"DATABASE_URL", "AMQP_URL", "AMQP_EXCHANGE", "AMQP_DLX", "AMQP_CONNECTION_NAME",
	"CONSUMER_QUEUE", "CONSUMER_NAME", "CONSUMER_QUEUE_TYPE", "REJECT_FRACTION", "HTTP_ADDR", "LOG_LEVEL", "RETENTION_PROCESSED_MESSAGES", "PRUNE_INTERVAL"}

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
		DatabaseURL:        "postgres://localhost:5432/messagekit",
		AMQPURL:            "amqp://guest:guest@localhost:5672/",
		AMQPExchange:       "events",
		AMQPDLX:            "events.dlx",
		AMQPConnectionName: "fulfilment",
		ConsumerQueue:      "fulfilment.orders",
		ConsumerName:       "fulfilment",
		ConsumerQueueType:  "classic",
		RejectFraction:     0,
		HTTPAddr:           ":8082",
		LogLevel:           slog.LevelInfo,
		RetentionProcessed: 168 * time.Hour,
		PruneInterval:      5 * time.Minute,
	}
	if cfg != want {
		t.Fatalf("defaults %+v, want %+v", cfg, want)
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	setEnv(t, "DATABASE_URL=postgres://db/f", "AMQP_URL=amqp://u:p@mq:5672/v", "AMQP_EXCHANGE=ex", "AMQP_DLX=ex.dlx",
		"AMQP_CONNECTION_NAME=f-1", "CONSUMER_QUEUE=q", "CONSUMER_NAME=c", "REJECT_FRACTION=0.25",
		"HTTP_ADDR=127.0.0.1:9000", "LOG_LEVEL=warn", "RETENTION_PROCESSED_MESSAGES=0", "PRUNE_INTERVAL=1m", "CONSUMER_QUEUE_TYPE=quorum")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DatabaseURL: "postgres://db/f", AMQPURL: "amqp://u:p@mq:5672/v", AMQPExchange: "ex", AMQPDLX: "ex.dlx",
		AMQPConnectionName: "f-1", ConsumerQueue: "q", ConsumerName: "c", ConsumerQueueType: "quorum", RejectFraction: 0.25,
		HTTPAddr: "127.0.0.1:9000", LogLevel: slog.LevelWarn, PruneInterval: time.Minute,
	}
	if cfg != want {
		t.Fatalf("config %+v, want %+v", cfg, want)
	}
}

// An invalid value is reported with the name of its variable.
func TestConfigInvalid(t *testing.T) {
	for _, v := range []string{
		"REJECT_FRACTION=1.5", "REJECT_FRACTION=-0.1", "REJECT_FRACTION=NaN", "REJECT_FRACTION=often",
		"LOG_LEVEL=loud", "HTTP_ADDR=nonsense", "CONSUMER_QUEUE=", "CONSUMER_NAME=", "AMQP_DLX=",
		"DATABASE_URL=postgres://h:badport/db", "AMQP_URL=http://mq/", "PRUNE_INTERVAL=-1s", "RETENTION_PROCESSED_MESSAGES=-1h", "CONSUMER_QUEUE_TYPE=stream",
	} {
		t.Run(v, func(t *testing.T) {
			setEnv(t, v)
			name, _, _ := strings.Cut(v, "=")
			if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("loadConfig = %v, want an error naming %s", err, name)
			}
		})
	}
	for _, v := range []string{"REJECT_FRACTION=0", "REJECT_FRACTION=1"} {
		setEnv(t, v)
		if _, err := loadConfig(); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}
