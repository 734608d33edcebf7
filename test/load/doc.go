// Command load measures cmd/bridge as a process of its own (issue 5):
// throughput against the RabbitMQ publisher-confirm ceiling measured in the
// same run, the bridge's CPU time per record, end-to-end latency at a fixed
// rate, and its peak RSS at two data-set sizes.
//
// The tool runs Kafka in-process (kfake), creates a scratch database on
// TEST_DATABASE_URL's server (migrated, dropped afterwards) and a topic
// exchange with one durable classic queue on TEST_AMQP_URL (deleted
// afterwards), builds ./cmd/bridge (or takes -bridge) and starts it as a
// child process configured by environment variables. Its own AMQP consumer
// drains the queue and counts every arrival by (x-kafka-partition,
// x-kafka-offset) of the run's topic. Figures of the child come from
// /proc/<pid>/stat (CPU) and /proc/<pid>/status (VmRSS, VmHWM, read until it
// exits), so kfake, the producers and the consumer are not in them. (A
// child's rusage Maxrss is not used: os/exec starts it with vfork, so it
// counts this tool's resident set from before the exec.)
//
// Modes (-modes, comma-separated, run in this order):
//
//	throughput  preload -n records, then, -rounds times: the RabbitMQ
//	            ceiling, a bridge from the start of the topic; and a
//	            last ceiling (C B C … C). Each bridge is a new consumer
//	            group. Rates are first to last arrival at the consumer.
//	rate        first the tool publishing to RabbitMQ alone at -rate, the
//	            bridge's way; then a new bridge, and records produced at
//	            -rate per second for -warmup plus -duration. Latency is
//	            arrival minus the envelope's occurredAt, stamped just
//	            before the produce (or the publish).
//	flat        a bridge over -flat-n records: VmRSS at 10, 50 and 90 % of
//	            them and the peak, compared with the -n run's.
//
// Run from the module root:
//
//	go run ./test/load -h
//	go run ./test/load -modes throughput,rate -rounds 2
//	go run ./test/load -modes throughput,flat -json
//	go run ./test/load -modes throughput -profile-dir /tmp/prof  # BRIDGE_CPU_PROFILE
package main
