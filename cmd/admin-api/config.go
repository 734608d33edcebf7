package main

import (
	"errors"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/adminapi"
	"github.com/firstunicorn/messagekit-go/internal/config"
)

// Config is messagekit-admin-api's configuration (DESIGN.md §5). Field
// order is the order --help lists the variables in. Each field is documented
// by its desc tag, which --help prints.
type Config struct {
	config.Common
	HTTPAddr config.ListenAddr `envconfig:"HTTP_ADDR" default:":8080" desc:"listen address (host:port) of the API, /healthz, /readyz and /metrics"`

	config.Kafka
	OutboxTopic string `envconfig:"OUTBOX_TOPIC" default:"events" desc:"Kafka topic outbox replays are written to"`

	config.AMQP
	config.Catalog
	AMQPConnName string `envconfig:"AMQP_CONNECTION_NAME" default:"messagekit-admin-api" desc:"client-provided name of the RabbitMQ connection replays are published on"`
	AMQPExchange string `envconfig:"AMQP_EXCHANGE" default:"events" desc:"RabbitMQ exchange the bridge publishes to"`

	AdminToken               config.Secret `envconfig:"ADMIN_TOKEN" desc:"bearer token of the principal admin for /api/v1, at least 16 bytes (secret, never printed); with neither it nor ADMIN_TOKENS, /api/v1 answers 503"`
	AdminTokens              config.Secret `envconfig:"ADMIN_TOKENS" desc:"named principals, name=token,... (a token at least 16 bytes, or sha256:<hex> of it); the name is recorded in admin_actions (secret, never printed)"`
	AdminReadOpen            bool          `envconfig:"ADMIN_READ_OPEN" default:"false" desc:"let GET requests under /api/v1 through without the token"`
	ReplayDestinations       string        `envconfig:"ADMIN_REPLAY_DESTINATIONS" default:"*" desc:"comma-separated path.Match patterns of the queues and topics a replay may publish to; * alone allows all"`
	ReplayClaimTimeout       time.Duration `envconfig:"ADMIN_REPLAY_CLAIM_TIMEOUT" default:"5m" desc:"a replay's claim on a dead letter older than this (the API crashed between claim and publish) is released: the dead letter is pending again"`
	OutboxHealthPending      int64         `envconfig:"OUTBOX_HEALTH_PENDING" default:"1000" desc:"/health/outbox is degraded above this many pending outbox events"`
	OutboxHealthStaleAfter   time.Duration `envconfig:"OUTBOX_HEALTH_STALE_AFTER" default:"300s" desc:"/health/outbox is degraded when the oldest pending outbox event is older than this"`
	OutboxHealthSlotLagBytes int64         `envconfig:"OUTBOX_HEALTH_SLOT_LAG_BYTES" default:"1073741824" desc:"with OUTBOX_SLOT_NAME, /health/outbox is degraded when the slot is more than this many bytes of WAL behind (or missing, inactive, lost)"`
	OutboxSlotName           string        `envconfig:"OUTBOX_SLOT_NAME" default:"" desc:"Debezium replication slot of the outbox, read for /outbox/stats and /health/outbox lag; empty: the Relay publishes the outbox"`
}

// Validate checks the admin API's own names, the tokens (never quoting
// them), the destination patterns and the thresholds.
func (c *Config) Validate() error {
	if err := config.CheckTopic("OUTBOX_TOPIC", c.OutboxTopic); err != nil {
		return err
	}
	if err := config.CheckAMQPName("AMQP_EXCHANGE", c.AMQPExchange); err != nil {
		return err
	}
	if err := config.CheckAMQPName("AMQP_CONNECTION_NAME", c.AMQPConnName); err != nil {
		return err
	}
	if c.AdminToken.IsSet() {
		if err := adminapi.CheckToken(c.AdminToken.Reveal()); err != nil {
			return &config.Error{Var: "ADMIN_TOKEN", Redacted: true, Err: err}
		}
	}
	tokens, err := c.tokens()
	if err != nil {
		return &config.Error{Var: "ADMIN_TOKENS", Redacted: true, Err: err}
	}
	if _, dup := tokens[adminapi.AdminPrincipal]; dup && c.AdminToken.IsSet() {
		return &config.Error{Var: "ADMIN_TOKENS", Redacted: true,
			Err: errors.New("principal admin is ADMIN_TOKEN's; name it otherwise")}
	}
	for _, p := range c.destinations() {
		if _, err := path.Match(p, ""); err != nil {
			return config.Invalid("ADMIN_REPLAY_DESTINATIONS", c.ReplayDestinations, "pattern "+p+": "+err.Error())
		}
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"OUTBOX_HEALTH_PENDING", c.OutboxHealthPending}, {"OUTBOX_HEALTH_SLOT_LAG_BYTES", c.OutboxHealthSlotLagBytes}} {
		if v.n < 1 {
			return config.Invalid(v.name, strconv.FormatInt(v.n, 10), "must be at least 1")
		}
	}
	if c.OutboxHealthStaleAfter <= 0 {
		return config.Invalid("OUTBOX_HEALTH_STALE_AFTER", c.OutboxHealthStaleAfter.String(), "must be positive")
	}
	if c.ReplayClaimTimeout < time.Second {
		return config.Invalid("ADMIN_REPLAY_CLAIM_TIMEOUT", c.ReplayClaimTimeout.String(), "must be at least 1s")
	}
	return nil
}

// tokens parses ADMIN_TOKENS and checks each token.
func (c *Config) tokens() (map[string]string, error) {
	tokens, err := adminapi.ParseTokens(c.AdminTokens.Reveal())
	if err != nil {
		return nil, err
	}
	for name, token := range tokens {
		if err := adminapi.CheckToken(token); err != nil {
			return nil, errors.New("principal " + name + ": " + err.Error())
		}
	}
	return tokens, nil
}

// destinations splits ADMIN_REPLAY_DESTINATIONS.
func (c *Config) destinations() []string {
	var out []string
	for _, p := range strings.Split(c.ReplayDestinations, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
