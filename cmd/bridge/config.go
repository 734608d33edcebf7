package main

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/firstunicorn/messagekit-go/internal/bridge"
	"github.com/firstunicorn/messagekit-go/internal/config"
)

// Config is messagekit-bridge's configuration (DESIGN.md §5). Field order is
// the order --help lists the variables in. Each field is documented by its
// desc tag, which --help prints.
type Config struct {
	config.Common
	HTTPAddr config.ListenAddr `envconfig:"HTTP_ADDR" default:":9090" desc:"listen address (host:port) of /healthz, /readyz and /metrics"`

	config.Kafka
	KafkaTopics   config.List `envconfig:"KAFKA_TOPICS" default:"events" desc:"Kafka topics to consume, comma-separated"`
	KafkaGroupID  string      `envconfig:"KAFKA_GROUP_ID" default:"messagekit-bridge" desc:"Kafka consumer group"`
	KafkaDLQTopic string      `envconfig:"KAFKA_DLQ_TOPIC" desc:"Kafka topic for poison records; empty means <source topic>.dlq"`

	config.Catalog

	config.AMQP
	AMQPExchange string `envconfig:"AMQP_EXCHANGE" default:"events" desc:"RabbitMQ exchange (durable topic) events are published to"`
	AMQPDeclare  bool   `envconfig:"AMQP_DECLARE" default:"true" desc:"declare AMQP_EXCHANGE and AMQP_DLX at start and after every reconnection"`
	AMQPConnName string `envconfig:"AMQP_CONNECTION_NAME" default:"messagekit-bridge" desc:"client-provided name of the RabbitMQ connection"`

	BatchSize        int           `envconfig:"BRIDGE_BATCH_SIZE" default:"500" desc:"most records published per partition before waiting for confirms (1 to 10000)"`
	BatchWait        time.Duration `envconfig:"BRIDGE_BATCH_WAIT" default:"0s" desc:"longest wait for more records once the first of a batch arrived while the partition is idle; 0 takes what has been fetched"`
	FetchMinBytes    int           `envconfig:"BRIDGE_FETCH_MIN_BYTES" default:"16384" desc:"least data a Kafka fetch waits for, up to BRIDGE_FETCH_MAX_WAIT (Kafka's fetch.min.bytes); 1 answers as soon as there is a record"`
	FetchMaxWait     time.Duration `envconfig:"BRIDGE_FETCH_MAX_WAIT" default:"20ms" desc:"longest a Kafka fetch waits for BRIDGE_FETCH_MIN_BYTES (fetch.max.wait.ms); an idle bridge fetches once per this long"`
	MaxRecordBytes   int           `envconfig:"BRIDGE_MAX_RECORD_BYTES" default:"16777216" desc:"larger records are dead-lettered with stage RECORD_TOO_LARGE (at most 536870912, RabbitMQ's limit)"`
	MaxInflightBytes int64         `envconfig:"BRIDGE_MAX_INFLIGHT_BYTES" default:"67108864" desc:"record bytes buffered or unconfirmed across all partitions; above it fetching pauses (at least BRIDGE_MAX_RECORD_BYTES)"`
	Unroutable       string        `envconfig:"BRIDGE_UNROUTABLE" default:"drop" desc:"what to do with messages RabbitMQ returns as unroutable: drop or dlq"`
	MaxRate          float64       `envconfig:"BRIDGE_MAX_RATE" default:"0" desc:"most records published per second, all partitions together; 0 means unlimited"`
	RoutingKey       string        `envconfig:"BRIDGE_ROUTING_KEY" default:"{eventType}" desc:"routing key template of published messages"`
	BreakerTimeout   time.Duration `envconfig:"BRIDGE_BREAKER_TIMEOUT" default:"30s" desc:"how long the dedup store circuit breaker stays open (after 5 consecutive failures) before one probe"`
	CPUProfile       string        `envconfig:"BRIDGE_CPU_PROFILE" desc:"for measurements (test/load): write a Go CPU profile of the run to this file, finished at shutdown; empty (the default) means no profiling"`
}

// Validate checks the ranges and choices envconfig cannot express.
func (c *Config) Validate() error {
	switch {
	case c.BatchSize < 1:
		return config.Invalid("BRIDGE_BATCH_SIZE", strconv.Itoa(c.BatchSize), "must be at least 1")
	case c.BatchSize > maxBatchSize:
		return config.Invalid("BRIDGE_BATCH_SIZE", strconv.Itoa(c.BatchSize), "must be at most "+strconv.Itoa(maxBatchSize)+" (records buffered per partition)")
	case c.FetchMinBytes > maxFetchMinBytes:
		return config.Invalid("BRIDGE_FETCH_MIN_BYTES", strconv.Itoa(c.FetchMinBytes), "must be at most "+strconv.Itoa(maxFetchMinBytes))
	case c.MaxRecordBytes > maxRecordBytes:
		return config.Invalid("BRIDGE_MAX_RECORD_BYTES", strconv.Itoa(c.MaxRecordBytes), "must be at most "+strconv.Itoa(maxRecordBytes)+" (RabbitMQ's largest message)")
	case c.BatchWait < 0:
		return config.Invalid("BRIDGE_BATCH_WAIT", c.BatchWait.String(), "must not be negative")
	case c.FetchMinBytes < 1:
		return config.Invalid("BRIDGE_FETCH_MIN_BYTES", strconv.Itoa(c.FetchMinBytes), "must be at least 1")
	case c.FetchMaxWait < time.Millisecond:
		return config.Invalid("BRIDGE_FETCH_MAX_WAIT", c.FetchMaxWait.String(), "must be at least 1ms (Kafka counts it in milliseconds)")
	case c.MaxInflightBytes < int64(c.MaxRecordBytes):
		return config.Invalid("BRIDGE_MAX_INFLIGHT_BYTES", strconv.FormatInt(c.MaxInflightBytes, 10), "must be at least BRIDGE_MAX_RECORD_BYTES ("+strconv.Itoa(c.MaxRecordBytes)+")")
	case c.MaxRecordBytes <= 0:
		return config.Invalid("BRIDGE_MAX_RECORD_BYTES", strconv.Itoa(c.MaxRecordBytes), "must be positive")
	case c.Unroutable != "drop" && c.Unroutable != "dlq":
		return config.Invalid("BRIDGE_UNROUTABLE", c.Unroutable, "want drop or dlq")
	case c.BreakerTimeout <= 0:
		return config.Invalid("BRIDGE_BREAKER_TIMEOUT", c.BreakerTimeout.String(), "must be positive")
	case c.MaxRate < 0 || math.IsNaN(c.MaxRate) || math.IsInf(c.MaxRate, 0):
		return config.Invalid("BRIDGE_MAX_RATE", strconv.FormatFloat(c.MaxRate, 'g', -1, 64), "want a number of records per second, 0 for unlimited")
	}
	if err := config.CheckTopics("KAFKA_TOPICS", c.KafkaTopics); err != nil {
		return err
	}
	if err := config.CheckTopic("KAFKA_DLQ_TOPIC", c.KafkaDLQTopic); err != nil {
		return err
	}
	if c.KafkaDLQTopic == "" {
		for _, t := range c.KafkaTopics {
			if err := config.CheckTopic("KAFKA_TOPICS", t+".dlq"); err != nil {
				return config.Invalid("KAFKA_TOPICS", t, "its DLQ topic "+t+".dlq would be longer than Kafka allows; set KAFKA_DLQ_TOPIC")
			}
		}
	}
	if err := config.CheckAMQPName("AMQP_EXCHANGE", c.AMQPExchange); err != nil {
		return err
	}
	if err := config.CheckAMQPName("AMQP_CONNECTION_NAME", c.AMQPConnName); err != nil {
		return err
	}
	if _, err := bridge.ParseRoutingKey(c.RoutingKey); err != nil {
		return config.Invalid("BRIDGE_ROUTING_KEY", c.RoutingKey, strings.TrimPrefix(err.Error(), "bridge: "))
	}
	return nil
}

// Upper bounds on sizes: beyond them a typo costs the process its memory.
const (
	maxBatchSize     = 10000
	maxFetchMinBytes = 64 << 20
	maxRecordBytes   = 512 << 20
)
