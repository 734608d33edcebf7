package outboxsarama_test

import (
	"fmt"

	"github.com/IBM/sarama"

	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// An aggregate's partition is the one the Java client (and so Debezium)
// would pick.
func ExampleNewMurmur2Partitioner() {
	p := outboxsarama.NewMurmur2Partitioner("events")
	for _, key := range []string{"foobar", "user-42"} {
		partition, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, 10)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(key, partition)
	}
	// Output:
	// foobar 6
	// user-42 0
}
