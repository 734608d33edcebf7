package kafkadlq

import (
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/firstunicorn/messagekit-go/internal/bookkeeper"
	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// HeaderExceptionStacktrace is the stack trace header Kafka Connect adds
// when errors.deadletterqueue.context.headers.enable is true. It is kept in
// the headers column only.
const HeaderExceptionStacktrace = "__connect.errors.exception.stacktrace"

// Connect is what the __connect.errors.* headers of a Kafka DLQ record say
// (DESIGN.md §3; Kafka Connect's DLQ convention). A header that is absent
// leaves its field empty (Partition and Offset -1).
type Connect struct {
	Topic              string
	Partition          int32
	Offset             int64
	Connector          string
	TaskID             string
	Stage              string
	ClassName          string
	ExceptionClassName string
	ExceptionMessage   string
}

var (
	topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	stageRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
)

// ParseConnect reads the __connect.errors.* headers, where a repeated
// header counts by its last occurrence (the newest). It returns what it
// could read and an error naming the first problem: no stage header, or a
// header whose value is not what Kafka Connect writes there (a topic that
// is not a topic name, a partition or offset that is not a decimal integer,
// a stage that is not upper-case letters and underscores). A value that is
// null counts as absent.
func ParseConnect(headers []*sarama.RecordHeader) (Connect, error) {
	c := Connect{Partition: -1, Offset: -1}
	var problems []error
	get := func(key string) (string, bool) {
		var v []byte
		found := false
		for _, h := range headers {
			if h != nil && string(h.Key) == key && h.Value != nil {
				v, found = h.Value, true
			}
		}
		return string(v), found
	}
	if s, ok := get(contracts.DLQHeaderTopic); ok {
		if topicRE.MatchString(s) {
			c.Topic = s
		} else {
			problems = append(problems, fmt.Errorf("%s %q is not a topic name", contracts.DLQHeaderTopic, short(s)))
		}
	}
	if s, ok := get(contracts.DLQHeaderPartition); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32); err == nil && n >= 0 {
			c.Partition = int32(n)
		} else {
			problems = append(problems, fmt.Errorf("%s %q is not a partition", contracts.DLQHeaderPartition, short(s)))
		}
	}
	if s, ok := get(contracts.DLQHeaderOffset); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil && n >= 0 {
			c.Offset = n
		} else {
			problems = append(problems, fmt.Errorf("%s %q is not an offset", contracts.DLQHeaderOffset, short(s)))
		}
	}
	c.Connector, _ = get(contracts.DLQHeaderConnectorName)
	c.TaskID, _ = get(contracts.DLQHeaderTaskID)
	c.ClassName, _ = get(contracts.DLQHeaderClassName)
	c.ExceptionClassName, _ = get(contracts.DLQHeaderExceptionClassName)
	c.ExceptionMessage, _ = get(contracts.DLQHeaderExceptionMessage)
	stage, ok := get(contracts.DLQHeaderStage)
	switch {
	case !ok:
		problems = append([]error{fmt.Errorf("no %s header", contracts.DLQHeaderStage)}, problems...)
	case stageRE.MatchString(stage):
		c.Stage = stage
	default:
		problems = append([]error{fmt.Errorf("%s %q is not a stage", contracts.DLQHeaderStage, short(stage))}, problems...)
	}
	if len(problems) > 0 {
		return c, problems[0]
	}
	return c, nil
}

func short(s string) string { return deadletter.CleanText(s, 64) }

// ErrorMessage returns the human-readable cause of a Kafka dead letter, as
// error_message and the outbox row's error_message hold it: the exception
// message when there is one, else "dead-lettered at stage S by C".
func ErrorMessage(c Connect) string {
	if strings.TrimSpace(c.ExceptionMessage) != "" {
		return c.ExceptionMessage
	}
	msg := "dead-lettered at stage " + c.Stage
	if c.Connector != "" {
		msg += " by " + c.Connector
	}
	if c.ExceptionClassName != "" {
		msg += " (" + c.ExceptionClassName + ")"
	}
	return msg
}

// Parse turns a record of a Kafka DLQ topic into a Letter. It never fails
// and never panics: a record without a usable __connect.errors.stage header
// is kept raw with its Problem set and reason deadletter.ReasonUnparseable.
//
// The origin is __connect.errors.topic, else the DLQ topic; the reason is
// the stage; the event id is header id when it is a UUID, else the body's
// eventId; the event type is header eventType, else the body's.
// origin_detail holds dlq_topic, dlq_partition, dlq_offset, timestamp, and
// from the headers partition, offset, connector, task, stage, class and
// exception_class, plus value_null for a tombstone and parse_error.
func Parse(m *sarama.ConsumerMessage) (l bookkeeper.Letter) {
	defer func() {
		if p := recover(); p != nil {
			l = minimal(m, fmt.Errorf("parsing the record panicked: %v", p))
		}
	}()
	l = rawLetter(m, nil)
	c, problem := ParseConnect(m.Headers)
	detail := l.OriginDetail
	for k, v := range map[string]string{"connector": c.Connector, "task": c.TaskID, "stage": c.Stage,
		"class": c.ClassName, "exception_class": c.ExceptionClassName} {
		if v != "" {
			detail[k] = v
		}
	}
	if c.Partition >= 0 {
		detail["partition"] = c.Partition
	}
	if c.Offset >= 0 {
		detail["offset"] = c.Offset
	}
	if c.Topic != "" {
		l.Origin = c.Topic
		l.Attrs = append(l.Attrs, slog.String("topic", c.Topic), slog.Int("partition", int(c.Partition)),
			slog.Int64("offset", c.Offset))
	}
	if c.Stage != "" {
		l.Reason = c.Stage
		l.ErrorMessage = ErrorMessage(c)
	} else {
		l.ErrorMessage = fmt.Sprintf("unparseable dead letter in Kafka topic %s: %v", m.Topic, problem)
	}
	if problem != nil {
		detail["parse_error"] = problem.Error()
		l.Problem = problem
	}
	return l
}

// rawLetter fills what every Letter from m has; with problem set it is the
// Letter of a record Parse could not handle at all.
func rawLetter(m *sarama.ConsumerMessage, problem error) bookkeeper.Letter {
	hs := make([]deadletter.KafkaHeader, 0, len(m.Headers))
	var id, eventType string
	for _, h := range m.Headers {
		if h == nil {
			continue
		}
		hs = append(hs, deadletter.KafkaHeader{Key: h.Key, Value: h.Value})
		switch string(h.Key) {
		case contracts.KafkaHeaderID:
			id = string(h.Value)
		case contracts.KafkaHeaderEventType:
			eventType = string(h.Value)
		}
	}
	detail := map[string]any{"dlq_topic": m.Topic, "dlq_partition": m.Partition, "dlq_offset": m.Offset}
	if !m.Timestamp.IsZero() {
		detail["timestamp"] = m.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if m.Value == nil {
		detail["value_null"] = true
	}
	l := bookkeeper.Letter{
		DeadLetter: deadletter.DeadLetter{
			Source:       deadletter.SourceKafka,
			Origin:       m.Topic,
			OriginDetail: detail,
			Reason:       deadletter.ReasonUnparseable,
			Headers:      deadletter.EncodeKafkaHeaders(hs),
			Key:          m.Key,
			Body:         m.Value,
			// A record's place in its DLQ topic names it exactly; the same
			// place seen again is a redelivery after a commit.
			Delivery:      fmt.Sprintf("kafka:%s/%d/%d", m.Topic, m.Partition, m.Offset),
			MaybeRepeated: true,
		},
		Attrs: []slog.Attr{slog.String("dlq_topic", m.Topic), slog.Int("dlq_partition", int(m.Partition)),
			slog.Int64("dlq_offset", m.Offset)},
	}
	parsed, idOK := bookkeeper.EventID(id)
	l.EventID, l.EventType = parsed, eventType
	if !idOK || l.EventType == "" { // only then is the body read
		bodyID, bodyType := bookkeeper.EventFromBody(m.Value)
		if !idOK {
			l.EventID = bodyID
		}
		if l.EventType == "" {
			l.EventType = bodyType
		}
	}
	if problem != nil {
		detail["parse_error"] = problem.Error()
		l.Problem = problem
		l.ErrorMessage = fmt.Sprintf("unparseable dead letter in Kafka topic %s: %v", m.Topic, problem)
	}
	return l
}

// minimal is the Letter of a record whose parsing panicked: the raw record
// and where it was, nothing read from its content.
func minimal(m *sarama.ConsumerMessage, problem error) bookkeeper.Letter {
	msg := fmt.Sprintf("unparseable dead letter in Kafka topic %s: %v", m.Topic, problem)
	return bookkeeper.Letter{
		DeadLetter: deadletter.DeadLetter{
			Source: deadletter.SourceKafka,
			Origin: m.Topic,
			OriginDetail: map[string]any{"dlq_topic": m.Topic, "dlq_partition": m.Partition, "dlq_offset": m.Offset,
				"parse_error": problem.Error()},
			Reason:        deadletter.ReasonUnparseable,
			ErrorMessage:  msg,
			Key:           m.Key,
			Body:          m.Value,
			Delivery:      fmt.Sprintf("kafka:%s/%d/%d", m.Topic, m.Partition, m.Offset),
			MaybeRepeated: true,
		},
		Attrs: []slog.Attr{slog.String("dlq_topic", m.Topic), slog.Int("dlq_partition", int(m.Partition)),
			slog.Int64("dlq_offset", m.Offset)},
		Problem: problem,
	}
}
