// Package tlsfiles builds a client *tls.Config from PEM files, the way
// operators hand certificates to a container (mounted Secrets): a CA bundle
// to verify the server with, a client certificate and key for mutual TLS,
// and the server name to expect.
//
// It depends on the standard library only, so the AMQP and Kafka packages
// of this module and their users can share it without dragging a broker
// client in.
package tlsfiles
