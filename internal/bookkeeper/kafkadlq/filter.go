package kafkadlq

import "strings"

// MatchEventType reports whether eventType matches pattern, a RabbitMQ
// topic binding key: words separated by '.', where '*' stands for exactly
// one word and '#' for zero or more ("identity.#", "*.user.*", "#"). The
// same syntax as DLQ_BINDINGS, so one producer's pattern serves both.
func MatchEventType(pattern, eventType string) bool {
	return matchWords(strings.Split(pattern, "."), strings.Split(eventType, "."))
}

func matchWords(p, w []string) bool {
	for len(p) > 0 {
		switch p[0] {
		case "#":
			for i := 0; i <= len(w); i++ {
				if matchWords(p[1:], w[i:]) {
					return true
				}
			}
			return false
		case "*":
			if len(w) == 0 {
				return false
			}
		default:
			if len(w) == 0 || w[0] != p[0] {
				return false
			}
		}
		p, w = p[1:], w[1:]
	}
	return len(w) == 0
}

// owns reports whether this bookkeeper stores a dead letter of eventType:
// when no pattern is configured, when the type is unknown (an unparseable
// record cannot be attributed, and dropping it would lose it, so every
// bookkeeper keeps it), or when a pattern matches.
func (c *Consumer) owns(eventType string) bool {
	if len(c.cfg.EventTypes) == 0 || eventType == "" {
		return true
	}
	for _, p := range c.cfg.EventTypes {
		if MatchEventType(p, eventType) {
			return true
		}
	}
	return false
}
