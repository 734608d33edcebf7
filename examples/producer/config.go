package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
)

// Config is the sales service's configuration, read from the environment.
type Config struct {
	DatabaseURL  string   `envconfig:"DATABASE_URL" default:"postgres://localhost:5432/messagekit"`
	HTTPAddr     string   `envconfig:"HTTP_ADDR" default:":8081"`
	KafkaBrokers []string `envconfig:"KAFKA_BROKERS" default:"localhost:9092"`
	OutboxTopic  string   `envconfig:"OUTBOX_TOPIC" default:"events"`
	RelayEnabled bool     `envconfig:"RELAY_ENABLED" default:"true"` // false when Debezium publishes the outbox
	// Outbox rows older than this are pruned every PRUNE_INTERVAL (0 turns
	// pruning off): published ones with the Relay, every one without it.
	RetentionOutbox time.Duration `envconfig:"RETENTION_OUTBOX" default:"720h"`
	PruneInterval   time.Duration `envconfig:"PRUNE_INTERVAL" default:"5m"`
	LogLevel        slog.Level    `envconfig:"LOG_LEVEL" default:"info"` // debug, info, warn or error
}

// kafkaTopic is what Kafka accepts as a topic name.
var kafkaTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// loadConfig reads the environment. Its error names the variable at fault.
func loadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("", &cfg); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return cfg, fmt.Errorf("invalid %s %q: %v", pe.KeyName, pe.Value, pe.Err)
		}
		return cfg, err
	}
	for i, b := range cfg.KafkaBrokers {
		cfg.KafkaBrokers[i] = strings.TrimSpace(b)
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	if c.RetentionOutbox < 0 || c.PruneInterval < 0 {
		return fmt.Errorf("RETENTION_OUTBOX and PRUNE_INTERVAL must not be negative, got %v and %v", c.RetentionOutbox, c.PruneInterval)
	}
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL must not be empty")
	}
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		return fmt.Errorf("invalid DATABASE_URL: want a postgres:// URL (%v)", err)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("invalid HTTP_ADDR %q: want host:port or :port", c.HTTPAddr)
	}
	if !c.RelayEnabled {
		return nil
	}
	if len(c.KafkaBrokers) == 0 || c.KafkaBrokers[0] == "" {
		return errors.New("KAFKA_BROKERS must not be empty when RELAY_ENABLED=true")
	}
	for _, b := range c.KafkaBrokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("invalid KAFKA_BROKERS entry %q: want host:port", b)
		}
	}
	if !kafkaTopic.MatchString(c.OutboxTopic) || c.OutboxTopic == "." || c.OutboxTopic == ".." {
		return fmt.Errorf("invalid OUTBOX_TOPIC %q: not a Kafka topic name", c.OutboxTopic)
	}
	return nil
}
