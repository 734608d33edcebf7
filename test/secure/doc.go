// Package secure runs the bridge, the dlq-bookkeeper and the admin API as
// processes against secured dependencies, as an operator deploys them on a
// managed platform: Kafka (in-process kfake) with TLS, SASL/SCRAM-SHA-512
// and ACLs that allow each binary only what it needs; RabbitMQ over amqps://
// with a client certificate (a TLS-terminating proxy in front of the shared
// broker that requires and verifies one); PostgreSQL with
// sslmode=verify-full (a cluster of the test's own with TLS only). It shows
// the pipeline working end to end, and what an operator sees for a wrong
// password, an untrusted CA, a certificate for another host, a plaintext
// client and a missing ACL.
package secure
