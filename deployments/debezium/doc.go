// Package debezium holds the Debezium connector configuration that publishes
// messagekit's outbox (README.md explains every setting). Its test keeps the
// configuration in line with the migrations and the Kafka record contract
// (DESIGN.md §3).
package debezium

import _ "embed"

// ConnectorJSON is outbox-connector.json: a Kafka Connect connector
// definition ({"name": …, "config": {…}}) for POST /connectors.
//
//go:embed outbox-connector.json
var ConnectorJSON []byte
