// Package retention keeps tables bounded: a [Pruner] runs every table's
// prune function every interval, one active instance across replicas,
// counting the rows it deletes (DESIGN.md §12).
//
// The prune functions come from the packages that own the tables:
// [github.com/firstunicorn/messagekit-go/pkg/dedup.Postgres.RetentionTable]
// for processed_messages and
// [github.com/firstunicorn/messagekit-go/pkg/outbox.RetentionTable] for
// outbox_events; any func(ctx) (int64, error) that deletes in bounded
// batches will do for a service's own tables.
//
// One instance prunes at a time: a run first takes a PostgreSQL session
// advisory lock with pg_try_advisory_lock on a connection of its own and
// skips the run when another instance holds it. The lock is held only while
// a run lasts, so when the instance that pruned last goes away another one
// takes over at its next tick; a killed instance's lock goes with its
// session. The deletions themselves run on other connections of the pool
// in short transactions, so an instance killed mid-batch loses only its
// uncommitted batch, which the next run deletes again.
package retention
