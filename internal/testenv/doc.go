// Package testenv gives integration tests real services, isolated per test
// (DESIGN.md §10).
//
//   - PostgreSQL: a fresh database per test, created on the server named by
//     TEST_DATABASE_URL (default postgres://root@127.0.0.1:5432/test) and
//     dropped when the test ends.
//   - RabbitMQ: the broker at TEST_AMQP_URL (default
//     amqp://guest:guest@127.0.0.1:5672/), with unique exchange and queue names
//     per test that are deleted when the test ends.
//   - Kafka: an in-process kfake cluster per test (a real Kafka wire-protocol
//     server), or the cluster named by TEST_KAFKA_BROKERS.
//
// When PostgreSQL or RabbitMQ is unreachable and a Docker engine answers,
// testenv starts a container with ory/dockertest (once per test binary, removed
// by Docker after 15 minutes at the latest). When neither works the test is
// skipped with a message naming the variable to set — or fails, when
// MESSAGEKIT_REQUIRE_INTEGRATION=1 (as in CI), so a suite can not pass by
// skipping.
//
// Everything here is safe to call from parallel tests.
package testenv
