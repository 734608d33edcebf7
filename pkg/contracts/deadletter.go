package contracts

import (
	"errors"
	"go/token"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DLQHeaderPrefix starts the name of every Kafka Connect dead-letter header.
// A record that is dead-lettered again carries the headers of its previous
// death; writers drop those before adding their own, so that each header
// appears once.
const DLQHeaderPrefix = "__connect.errors."

// DLQTopicSuffix is appended to a source topic to name its dead-letter topic
// when none is configured (DESIGN.md §3).
const DLQTopicSuffix = ".dlq"

// StageTaskPut is the [Stage] of a record that decoded and validated but
// whose handler failed for good: the handler said the error is permanent, or
// it kept failing until the retries ran out. It is the stage Kafka Connect
// uses for a sink task that fails to process a record; the idempotent
// consumers of pkg/dedup write it. The bridge never does.
const StageTaskPut Stage = "TASK_PUT"

// MaxExceptionMessage is the longest [DLQHeaderExceptionMessage] value that
// [DeadLetter.Headers] writes, in bytes; a longer error message is cut at a
// UTF-8 boundary and ends in "…".
const MaxExceptionMessage = 4096

// DeadLetter describes a Kafka record that is being written to a dead-letter
// topic, and renders the Kafka Connect headers of DESIGN.md §3. It carries
// no broker client type, so the bridge, the idempotent consumers and tests
// share it. A DeadLetter is a plain value.
type DeadLetter struct {
	// Topic, Partition and Offset locate the original record.
	Topic     string
	Partition int32
	Offset    int64
	// Connector names the writer; empty means [DLQConnectorName] (the
	// bridge). Consumers write their consumer name.
	Connector string
	// TaskID identifies the failing task within the writer; empty means "0".
	TaskID string
	// Stage is the step that failed. Empty means the stage [StageOf] finds
	// in Err, else [StageTaskPut].
	Stage Stage
	// ClassName names the component that failed, e.g. the Go type
	// "github.com/firstunicorn/messagekit-go/pkg/dedup/kafkaconsumer.Consumer".
	ClassName string
	// Err is why the record is dead-lettered. Its message becomes
	// [DLQHeaderExceptionMessage] and its class [DLQHeaderExceptionClassName]
	// (see [ErrorClass]).
	Err error
}

// Headers returns the nine [DLQHeaderPrefix] headers as key/value pairs, in
// the order of DESIGN.md §3: topic, partition, offset, connector name, task
// id, stage, class name, exception class name and exception message (cut to
// [MaxExceptionMessage] bytes). All values are valid UTF-8. A nil Err gives
// an empty message and class.
func (d DeadLetter) Headers() [][2]string {
	connector := d.Connector
	if connector == "" {
		connector = DLQConnectorName
	}
	task := d.TaskID
	if task == "" {
		task = "0"
	}
	stage := d.Stage
	if stage == "" {
		var ok bool
		if stage, ok = StageOf(d.Err); !ok {
			stage = StageTaskPut
		}
	}
	var msg, class string
	if d.Err != nil {
		msg, class = truncate(d.Err.Error(), MaxExceptionMessage), ErrorClass(d.Err)
	}
	return [][2]string{
		{DLQHeaderTopic, validUTF8(d.Topic)},
		{DLQHeaderPartition, strconv.FormatInt(int64(d.Partition), 10)},
		{DLQHeaderOffset, strconv.FormatInt(d.Offset, 10)},
		{DLQHeaderConnectorName, validUTF8(connector)},
		{DLQHeaderTaskID, validUTF8(task)},
		{DLQHeaderStage, validUTF8(string(stage))},
		{DLQHeaderClassName, validUTF8(d.ClassName)},
		{DLQHeaderExceptionClassName, class},
		{DLQHeaderExceptionMessage, msg},
	}
}

// DeadLetterTopic returns the dead-letter topic for records of topic:
// configured when it is not empty (KAFKA_DLQ_TOPIC), else topic followed by
// [DLQTopicSuffix].
func DeadLetterTopic(configured, topic string) string {
	if configured != "" {
		return configured
	}
	return topic + DLQTopicSuffix
}

// ErrorClass returns the Go type of err for [DLQHeaderExceptionClassName]:
// the type of the first error in err's chain whose type has an exported
// name, so that wrappers such as fmt.Errorf's and errors.Join's are looked
// through (for a joined error, its first error is followed). It returns the
// type of the last error in the chain when none is exported, e.g.
// "*errors.errorString", and "" for nil. A pointer type is written with its
// star and full package path: "*github.com/…/pkg/contracts.ValidationError".
func ErrorClass(err error) string {
	var last error
	for e := err; e != nil; {
		last = e
		t := reflect.TypeOf(e)
		if named := indirect(t); named.Name() != "" && token.IsExported(named.Name()) {
			return typeName(t)
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			e = nil
			if len(errs) > 0 {
				e = errs[0]
			}
		default:
			e = errors.Unwrap(e)
		}
	}
	if last == nil {
		return ""
	}
	return typeName(reflect.TypeOf(last))
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// typeName writes t with its full package path, which %T leaves out.
func typeName(t reflect.Type) string {
	stars := ""
	for t.Kind() == reflect.Pointer && t.Name() == "" {
		stars += "*"
		t = t.Elem()
	}
	if t.PkgPath() == "" {
		return stars + t.String()
	}
	return stars + t.PkgPath() + "." + t.Name()
}

// truncate cuts s to at most max bytes of valid UTF-8, marking a cut with "…".
func truncate(s string, max int) string {
	s = validUTF8(s)
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// validUTF8 replaces invalid bytes with U+FFFD: header values are UTF-8 by
// contract.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
