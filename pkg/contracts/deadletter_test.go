package contracts

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"
)

type customErr struct{}

func (customErr) Error() string { return "custom" }

// Headers writes the nine Kafka Connect headers of DESIGN.md §3 in order,
// with the documented defaults for connector, task and stage.
func TestDeadLetterHeaders(t *testing.T) {
	_, decodeErr := Decode([]byte(`[1]`))
	_, validationErr := Decode([]byte(`{"eventId":"abc"}`))
	const pkg = "github.com/firstunicorn/messagekit-go/pkg/contracts."
	for _, tc := range []struct {
		name string
		dl   DeadLetter
		want map[string]string
	}{
		{"decode error, bridge defaults", DeadLetter{Topic: "events", Partition: 2, Offset: 41, ClassName: "bridge.Bridge", Err: decodeErr},
			map[string]string{
				DLQHeaderTopic: "events", DLQHeaderPartition: "2", DLQHeaderOffset: "41",
				DLQHeaderConnectorName: DLQConnectorName, DLQHeaderTaskID: "0", DLQHeaderStage: "DECODE",
				DLQHeaderClassName: "bridge.Bridge", DLQHeaderExceptionClassName: "*" + pkg + "DecodeError",
				DLQHeaderExceptionMessage: decodeErr.Error(),
			}},
		{"wrapped validation error, consumer name", DeadLetter{Topic: "t", Offset: 7, Connector: "billing", TaskID: "3",
			Err: fmt.Errorf("handle: %w", validationErr)},
			map[string]string{
				DLQHeaderConnectorName: "billing", DLQHeaderTaskID: "3", DLQHeaderStage: "VALIDATE",
				DLQHeaderExceptionClassName: "*" + pkg + "ValidationError",
				DLQHeaderExceptionMessage:   "handle: " + validationErr.Error(),
			}},
		{"handler error defaults to TASK_PUT", DeadLetter{Err: errors.New("boom")},
			map[string]string{DLQHeaderStage: "TASK_PUT", DLQHeaderExceptionClassName: "*errors.errorString"}},
		{"explicit stage wins", DeadLetter{Stage: StageAMQPNack, Err: decodeErr},
			map[string]string{DLQHeaderStage: "AMQP_NACK"}},
		{"joined error follows the first", DeadLetter{Err: errors.Join(fmt.Errorf("x: %w", fs.ErrNotExist), customErr{})},
			map[string]string{DLQHeaderExceptionClassName: "*errors.errorString"}},
		{"exported value type", DeadLetter{Err: fmt.Errorf("wrap: %w", &fs.PathError{Op: "open", Err: fs.ErrNotExist})},
			map[string]string{DLQHeaderExceptionClassName: "*io/fs.PathError"}},
		{"nil error", DeadLetter{Stage: StageDecode},
			map[string]string{DLQHeaderExceptionClassName: "", DLQHeaderExceptionMessage: ""}},
		{"invalid UTF-8 is replaced", DeadLetter{Topic: "a\xffb", Err: errors.New("bad \xfe byte")},
			map[string]string{DLQHeaderTopic: "a\uFFFDb", DLQHeaderExceptionMessage: "bad \uFFFD byte"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.dl.Headers()
			wantOrder := []string{DLQHeaderTopic, DLQHeaderPartition, DLQHeaderOffset, DLQHeaderConnectorName,
				DLQHeaderTaskID, DLQHeaderStage, DLQHeaderClassName, DLQHeaderExceptionClassName, DLQHeaderExceptionMessage}
			if len(h) != len(wantOrder) {
				t.Fatalf("got %d headers, want %d", len(h), len(wantOrder))
			}
			got := map[string]string{}
			for i, kv := range h {
				if kv[0] != wantOrder[i] {
					t.Errorf("header %d is %q, want %q", i, kv[0], wantOrder[i])
				}
				if !strings.HasPrefix(kv[0], DLQHeaderPrefix) {
					t.Errorf("header %q lacks the prefix %q", kv[0], DLQHeaderPrefix)
				}
				if !utf8.ValidString(kv[1]) {
					t.Errorf("header %q is not UTF-8: %q", kv[0], kv[1])
				}
				got[kv[0]] = kv[1]
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// A huge error message is cut to MaxExceptionMessage bytes at a rune boundary.
func TestDeadLetterMessageCut(t *testing.T) {
	long := strings.Repeat("é", MaxExceptionMessage) // 2 bytes a rune
	h := DeadLetter{Err: errors.New(long)}.Headers()
	msg := h[len(h)-1][1]
	if len(msg) > MaxExceptionMessage || !utf8.ValidString(msg) || !strings.HasSuffix(msg, "…") {
		t.Fatalf("message of %d bytes, valid %v, suffix %q", len(msg), utf8.ValidString(msg), msg[len(msg)-4:])
	}
}

func TestDeadLetterTopic(t *testing.T) {
	for _, tc := range []struct{ configured, topic, want string }{
		{"", "events", "events.dlq"},
		{"all.dlq", "events", "all.dlq"},
	} {
		if got := DeadLetterTopic(tc.configured, tc.topic); got != tc.want {
			t.Errorf("DeadLetterTopic(%q, %q) = %q, want %q", tc.configured, tc.topic, got, tc.want)
		}
	}
}

func TestErrorClassNil(t *testing.T) {
	if got := ErrorClass(nil); got != "" {
		t.Fatalf("ErrorClass(nil) = %q", got)
	}
	if got := ErrorClass(customErr{}); got != "github.com/firstunicorn/messagekit-go/pkg/contracts.customErr" {
		t.Fatalf("ErrorClass(customErr{}) = %q", got)
	}
}

func ExampleDeadLetter() {
	_, err := Decode([]byte(`{"eventId":"abc"}`))
	dl := DeadLetter{Topic: "events", Partition: 1, Offset: 42, Connector: "billing", Err: err}
	fmt.Println(DeadLetterTopic("", dl.Topic))
	for _, h := range dl.Headers() {
		fmt.Printf("%s=%s\n", h[0], h[1])
	}
	// Output:
	// events.dlq
	// __connect.errors.topic=events
	// __connect.errors.partition=1
	// __connect.errors.offset=42
	// __connect.errors.connector.name=billing
	// __connect.errors.task.id=0
	// __connect.errors.stage=VALIDATE
	// __connect.errors.class.name=
	// __connect.errors.exception.class.name=*github.com/firstunicorn/messagekit-go/pkg/contracts.ValidationError
	// __connect.errors.exception.message=eventId: not a UUID: "abc"
}
