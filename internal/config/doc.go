// Package config loads a binary's configuration from the environment with
// envconfig and turns every problem into an error that names the variable.
//
// Each binary declares one struct in cmd/<binary>/config.go whose fields
// carry `envconfig`, `default` and `desc` tags, embeds the shared groups
// declared here (Common, Kafka, AMQP), and passes a pointer to Load. Load is
// the only code in messagekit that reads configuration variables (the
// standard OTEL_* variables excepted: the OpenTelemetry SDK reads those
// itself); packages under internal/ and pkg/ take the resulting values.
//
// Two rules go beyond envconfig:
//
//   - A variable that has a default must not be set to an empty (or blank)
//     value. envconfig would store the empty string instead of the default,
//     so KAFKA_BROKERS= would silently mean "no brokers".
//   - After decoding, Load runs the shared groups' own checks and then the
//     spec's Validate method, if it has one.
//
// The value types (ListenAddr, Brokers, List, Secret) validate in their
// Decode methods, so a bad value is reported as soon as it is read.
package config
