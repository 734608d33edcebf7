// Package outboxsarama is the Kafka side of [outbox.Relay] built on IBM's
// sarama: a [Publisher] that writes records with an idempotent producer
// (acks=all, one request in flight per broker), partitioned by key with
// murmur2 exactly like the Java client, Kafka Connect and so Debezium.
//
// It lives apart from package outbox so that services that only write events
// (outbox.Writer) do not link sarama.
//
// # Partitioning
//
// The same aggregate must always land in the same partition: that is what
// keeps its events in order for consumers. sarama's default hash partitioner
// (FNV-1a) and its CRC32 "consistent" partitioner place keys differently
// from the Java client's murmur2, so a topic written both by Debezium (or any
// Java producer) and by the Relay — for instance while migrating from one to
// the other — would split an aggregate over two partitions. [Config]'s
// default, [NewMurmur2Partitioner], matches the Java client key for key.
package outboxsarama
