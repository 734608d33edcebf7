// Package kafkasecurity turns the settings operators give a Kafka client —
// TLS (system roots or a CA file, mutual TLS, server name) and SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512) — into a sarama configuration, so that a
// service reaches MSK, Confluent Cloud, Aiven or a Strimzi TLS listener.
//
// The binaries of this module build every Kafka client with it (the bridge,
// the bookkeeper, the admin API's replay publisher and the readiness
// checks); library users pass its result as the Sarama field of
// outboxsarama.Config and kafkaconsumer.Config.
//
// SCRAM is done by github.com/xdg-go/scram, the client sarama documents.
//
// A broker that rejects a SASL exchange often just closes the connection,
// so the client sees "EOF". [Config.Describe] says what was tried (TLS on
// or off, mechanism, user, never the password); wrap connection errors
// with it, as [Config.Explain] does, so the log line is actionable.
package kafkasecurity
