package outboxsarama

import (
	"encoding/binary"

	"github.com/IBM/sarama"
)

// NewMurmur2Partitioner is a sarama.PartitionerConstructor that places a
// keyed message where the Java client's default partitioner would:
// (murmur2(key) & 0x7fffffff) % partitions, murmur2 being Kafka's variant
// (seed 0x9747b28c). Messages without a key go to a random partition.
func NewMurmur2Partitioner(topic string) sarama.Partitioner {
	return murmur2Partitioner{random: sarama.NewRandomPartitioner(topic)}
}

type murmur2Partitioner struct {
	random sarama.Partitioner
}

// Partition implements sarama.Partitioner.
func (p murmur2Partitioner) Partition(msg *sarama.ProducerMessage, numPartitions int32) (int32, error) {
	if msg.Key == nil {
		return p.random.Partition(msg, numPartitions)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	return int32((murmur2(key) & 0x7fffffff) % uint32(numPartitions)), nil
}

// RequiresConsistency implements sarama.Partitioner: a key's partition
// never depends on which partitions are available.
func (murmur2Partitioner) RequiresConsistency() bool { return true }

// murmur2 is Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2),
// returned as the bits of the Java int.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for ; len(data) >= 4; data = data[4:] {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
