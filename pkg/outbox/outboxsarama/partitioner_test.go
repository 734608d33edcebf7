package outboxsarama

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// murmur2 is Kafka's: the vectors of Apache Kafka's UtilsTest.testMurmur2.
func TestMurmur2JavaVectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(tc.in))); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// The partitioner places every key where franz-go's Kafka-compatible
// partitioner (the Java client's murmur2 placement) does, and keyless
// messages somewhere valid.
func TestMurmur2PartitionerMatchesJavaClient(t *testing.T) {
	ours := NewMurmur2Partitioner("events")
	theirs := kgo.StickyKeyPartitioner(nil).ForTopic("events")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		key := []byte(fmt.Sprintf("aggregate-%d-%x", i, rng.Uint64()))[:1+rng.IntN(30)]
		n := int32(1 + rng.IntN(64))
		got, err := ours.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
		if err != nil {
			t.Fatal(err)
		}
		if want := int32(theirs.Partition(&kgo.Record{Key: key}, int(n))); got != want {
			t.Fatalf("key %q over %d partitions: %d, Java client %d", key, n, got, want)
		}
	}
	if !ours.RequiresConsistency() {
		t.Error("a key's partition must not depend on partition availability")
	}
	for range 20 {
		p, err := ours.Partition(&sarama.ProducerMessage{}, 3)
		if err != nil || p < 0 || p >= 3 {
			t.Fatalf("keyless message: partition %d, %v", p, err)
		}
	}
}
