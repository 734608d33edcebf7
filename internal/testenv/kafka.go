package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaVariable, when set, names a real Kafka cluster (comma-separated
// host:port) to use instead of an in-process kfake cluster.
const KafkaVariable = "TEST_KAFKA_BROKERS"

// DefaultPartitions is the partition count of topics KafkaWith creates when
// KafkaOptions.Partitions is zero.
const DefaultPartitions = 3

// KafkaOptions configures KafkaWith.
type KafkaOptions struct {
	// Partitions per created topic; zero means DefaultPartitions.
	Partitions int32
	// Topics to create before the test runs. Other topics are created on
	// first use (kfake auto-creates them with Partitions partitions).
	Topics []string
	// Fake are more kfake options (TLS, SASL users, ACLs). A test that sets
	// them runs against kfake even when TEST_KAFKA_BROKERS is set, since
	// it tests what those options make of the broker.
	Fake []kfake.Opt
}

// KafkaCluster is the Kafka a test talks to.
type KafkaCluster struct {
	// Brokers are the bootstrap addresses.
	Brokers []string
	// Fake is the in-process cluster, for fault injection; nil when
	// TEST_KAFKA_BROKERS names a real one.
	Fake *kfake.Cluster
}

// Kafka starts a Kafka cluster for this test with topics created (with
// DefaultPartitions partitions each) and returns its bootstrap addresses.
func Kafka(t testing.TB, topics ...string) []string {
	t.Helper()
	return KafkaWith(t, KafkaOptions{Topics: topics}).Brokers
}

// KafkaWith starts an in-process kfake cluster that is closed when the test
// ends, or, when TEST_KAFKA_BROKERS is set, creates opts.Topics there (they
// should come from UniqueName, since a real cluster is shared).
func KafkaWith(t testing.TB, opts KafkaOptions) *KafkaCluster {
	t.Helper()
	skipShort(t)
	if opts.Partitions <= 0 {
		opts.Partitions = DefaultPartitions
	}
	if brokers := os.Getenv(KafkaVariable); brokers != "" && len(opts.Fake) == 0 {
		addrs := strings.Split(brokers, ",")
		if err := createTopics(addrs, opts); err != nil {
			unavailable(t, KafkaVariable, err)
		}
		return &KafkaCluster{Brokers: addrs}
	}
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(opts.Partitions)),
		kfake.SeedTopics(opts.Partitions, opts.Topics...),
	}, opts.Fake...)...)
	if err != nil {
		t.Fatalf("testenv: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &KafkaCluster{Brokers: c.ListenAddrs(), Fake: c}
}

func createTopics(brokers []string, opts KafkaOptions) error {
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = probeTimeout
	cfg.Admin.Timeout = 30 * time.Second
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = admin.Close() }()
	for _, topic := range opts.Topics {
		err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: opts.Partitions, ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return err
		}
	}
	return nil
}

// ReadRecords reads topic from the start until it has n records (it may
// return more), failing t when they have not all arrived within d.
func ReadRecords(t testing.TB, brokers []string, topic string, n int, d time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records of %s arrived within %s", len(out), n, topic, d)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// RestartableKafka is a kfake cluster that keeps its log and committed
// offsets in a data directory (kfake.DataDir) and listens on a fixed port,
// so that a test can stop it and start it again, as a Kafka broker
// restarts. It is closed when the test ends.
type RestartableKafka struct {
	// Brokers are the bootstrap addresses; they stay the same across
	// restarts.
	Brokers []string
	// Dir is the data directory.
	Dir string

	opts []kfake.Opt
	mu   sync.Mutex
	c    *kfake.Cluster
}

// KafkaRestartable starts a RestartableKafka with opts.Topics created.
func KafkaRestartable(t testing.TB, opts KafkaOptions) *RestartableKafka {
	t.Helper()
	skipShort(t)
	if opts.Partitions <= 0 {
		opts.Partitions = DefaultPartitions
	}
	port, err := serverPort()
	if err != nil {
		t.Fatal(err)
	}
	k := &RestartableKafka{Dir: t.TempDir(), opts: []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("messagekit-" + randomHex(4)),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(opts.Partitions)),
	}}
	k.opts = append(k.opts, kfake.DataDir(k.Dir))
	c, err := kfake.NewCluster(append(k.opts, kfake.SeedTopics(opts.Partitions, opts.Topics...))...)
	if err != nil {
		t.Fatalf("testenv: start kfake: %v", err)
	}
	k.c, k.Brokers = c, c.ListenAddrs()
	t.Cleanup(k.Stop)
	return k
}

// Stop closes the cluster: its clients' connections drop and new ones are
// refused. Its state stays in Dir.
func (k *RestartableKafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// Start starts the cluster again from its data directory, on the same port.
func (k *RestartableKafka) Start() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		return errors.New("testenv: kfake is running")
	}
	var err error
	for range 50 { // the port may linger for a moment after Close
		if k.c, err = kfake.NewCluster(k.opts...); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("testenv: restart kfake from %s: %w", k.Dir, err)
}
