package config

import (
	"fmt"
	"strings"
)

// maxTopicLength is Kafka's limit on a topic name (249: the name plus a
// partition suffix must fit a 255-byte file name).
const maxTopicLength = 249

// maxAMQPName is AMQP 0-9-1's limit on exchange and queue names and routing
// keys (a short string: at most 255 bytes).
const maxAMQPName = 255

// CheckTopic returns an *Error for variable name when topic is not a legal
// Kafka topic name: 1 to 249 characters of ASCII letters, digits, '.', '_'
// and '-', and not "." or "..". An empty topic is left to the caller (some
// variables allow it to mean a default).
func CheckTopic(name, topic string) error {
	if topic == "" {
		return nil
	}
	if len(topic) > maxTopicLength {
		return Invalid(name, topic, fmt.Sprintf("topic name longer than %d characters", maxTopicLength))
	}
	if topic == "." || topic == ".." {
		return Invalid(name, topic, `"." and ".." are not legal topic names`)
	}
	for _, r := range topic {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return Invalid(name, topic, fmt.Sprintf("topic name with %q: Kafka allows ASCII letters, digits, '.', '_' and '-'", r))
		}
	}
	return nil
}

// CheckTopics runs CheckTopic on every entry of topics.
func CheckTopics(name string, topics []string) error {
	for _, t := range topics {
		if err := CheckTopic(name, t); err != nil {
			return err
		}
	}
	return nil
}

// CheckAMQPName returns an *Error for variable name when value (an
// exchange, queue, routing or binding key) is longer than AMQP's 255 bytes
// or holds a control character.
func CheckAMQPName(name, value string) error {
	if len(value) > maxAMQPName {
		return Invalid(name, truncate(value), fmt.Sprintf("%d bytes: AMQP names and keys are at most %d bytes", len(value), maxAMQPName))
	}
	if i := strings.IndexFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return Invalid(name, value, fmt.Sprintf("control character at byte %d", i))
	}
	return nil
}

// CheckAMQPNames runs CheckAMQPName on every entry of values.
func CheckAMQPNames(name string, values []string) error {
	for _, v := range values {
		if err := CheckAMQPName(name, v); err != nil {
			return err
		}
	}
	return nil
}

// truncate shortens a long value for an error message.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
