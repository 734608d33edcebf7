// Package integration holds tests that cross package boundaries against the
// real services of DESIGN.md §10 (PostgreSQL, RabbitMQ, kfake), such as the
// envelope's round trips through each of them. It has no non-test code.
package integration
