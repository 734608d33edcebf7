// Package bookkeepertest holds what the integration tests of the
// bookkeeper's sources share: a PostgreSQL database reached through a proxy
// that a test can take down, a Recorder with a fast breaker on it, and
// polling helpers. It is for tests only.
package bookkeepertest
