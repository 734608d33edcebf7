package kafkasecurity_test

import (
	"fmt"

	"github.com/firstunicorn/messagekit-go/pkg/kafkasecurity"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// A Relay publishing to Amazon MSK over TLS with SASL/SCRAM: the sarama
// config goes into outboxsarama.Config (or kafkaconsumer.Config) as it is.
func ExampleConfig_NewSarama() {
	sec := kafkasecurity.Config{
		TLS:       true, // MSK's certificates chain to the system roots
		Mechanism: kafkasecurity.SCRAMSHA512,
		Username:  "orders-relay",
		Password:  "read-me-from-a-file", // e.g. KAFKA_SASL_PASSWORD_FILE
	}
	sc, err := sec.NewSarama("orders-relay")
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = outboxsarama.Config{Sarama: sc} // then outboxsarama.New(brokers, cfg)
	fmt.Println(sc.Net.TLS.Enable, sc.Net.SASL.Mechanism)
	fmt.Println(sec.Describe())
	// Output:
	// true SCRAM-SHA-512
	// TLS on (system roots), SASL SCRAM-SHA-512 as user orders-relay
}
