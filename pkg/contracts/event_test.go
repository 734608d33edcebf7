package contracts

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

type userCreated struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
	Age    int    `json:"age"`
	Tags   []struct {
		Name string `json:"name"`
		Rank int    `json:"rank"`
	} `json:"tags,omitempty"`
}

type orderPlaced struct {
	OrderID string `json:"orderId"`
}

var testUserCreated = Define[userCreated]("identity.user.created")

func TestDefine(t *testing.T) {
	if got := testUserCreated.Name(); got != "identity.user.created" {
		t.Errorf("Name() = %q", got)
	}
	for _, bad := range []string{"", "Identity.user.created", "identity.user", "a.b.c.d"} {
		if _, err := NewEvent[userCreated](bad); err == nil {
			t.Errorf("NewEvent(%q) succeeded", bad)
		}
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "eventType") {
					t.Errorf("Define(%q) panic = %v", bad, r)
				}
			}()
			Define[userCreated](bad)
		}()
	}
}

// TestEventRoundTrip pins that a typed event encodes its data into the
// envelope and decodes it back through the wire.
func TestEventRoundTrip(t *testing.T) {
	in := userCreated{UserID: "u1", Email: "a@example.com", Age: 36}
	env, err := testUserCreated.New("user-42", "identity-service", in, WithCorrelationID("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if env.EventType != "identity.user.created" || env.CorrelationID != "c1" {
		t.Errorf("envelope %+v", env)
	}
	b, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	wire, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := testUserCreated.Decode(wire)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("got %+v, want %+v", got, in)
	}
}

func TestEventDecodeErrors(t *testing.T) {
	env, err := New("identity.user.created", "user-42", "identity-service", nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		env   func() Envelope
		field string
		msg   string
	}{
		{name: "wrong type", env: func() Envelope { e := env; e.EventType = "identity.user.deleted"; return e },
			field: "eventType", msg: `eventType: is "identity.user.deleted", want "identity.user.created"`},
		{name: "field of wrong type", env: func() Envelope { e := env; e.Data = []byte(`{"age":"old"}`); return e },
			field: "data.age", msg: "data.age: cannot decode JSON string into Go int"},
		{name: "nested field of wrong type", env: func() Envelope { e := env; e.Data = []byte(`{"tags":[{"rank":true}]}`); return e },
			field: "data.tags.rank", msg: "cannot decode JSON bool"},
		{name: "data not an object", env: func() Envelope { e := env; e.Data = []byte(`[1]`); return e },
			field: "data", msg: "data:"},
		{name: "data not JSON", env: func() Envelope { e := env; e.Data = []byte(`{"a":`); return e },
			field: "data", msg: "data:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := testUserCreated.Decode(tc.env())
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("got %v, want ValidationError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err, tc.msg)
			}
			if !reflect.DeepEqual(v, userCreated{}) {
				t.Errorf("returned partial value %+v", v)
			}
		})
	}

	// Unknown fields and empty data are fine: producers may add fields.
	e := env
	e.Data = []byte(`{"userId":"u1","newField":{"x":1}}`)
	if v, err := testUserCreated.Decode(e); err != nil || v.UserID != "u1" {
		t.Errorf("unknown field: %+v, %v", v, err)
	}
	e.Data = nil
	if _, err := testUserCreated.Decode(e); err != nil {
		t.Errorf("empty data: %v", err)
	}
}

func TestEventNewRejectsNonObject(t *testing.T) {
	ev := Define[[]string]("a.b.c")
	_, err := ev.New("agg", "svc", []string{"x"})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "data" {
		t.Fatalf("got %v, want ValidationError for data", err)
	}
}

func TestRegistry(t *testing.T) {
	var r Registry // the zero value is ready
	if err := RegisterEvent(&r, testUserCreated); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("sales.order.placed", orderPlaced{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("sales.order.shipped", &orderPlaced{}); err != nil {
		t.Fatal(err)
	}

	if typ, ok := r.Lookup("identity.user.created"); !ok || typ != reflect.TypeFor[userCreated]() {
		t.Errorf("Lookup = %v, %v", typ, ok)
	}
	if _, ok := r.Lookup("x.y.z"); ok {
		t.Error("Lookup of unregistered type succeeded")
	}
	if got, want := r.Types(), []string{"identity.user.created", "sales.order.placed", "sales.order.shipped"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}

	env, _ := testUserCreated.New("user-42", "identity-service", userCreated{UserID: "u1"})
	v, err := r.Decode(env)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := v.(userCreated); !ok || u.UserID != "u1" {
		t.Errorf("Decode = %#v", v)
	}

	env, _ = New("sales.order.placed", "o-1", "sales", orderPlaced{OrderID: "o-1"})
	if v, err := r.Decode(env); err != nil || v != (orderPlaced{OrderID: "o-1"}) {
		t.Errorf("Decode = %#v, %v", v, err)
	}
	env.EventType = "sales.order.shipped"
	if v, err := r.Decode(env); err != nil || v.(*orderPlaced).OrderID != "o-1" {
		t.Errorf("Decode pointer prototype = %#v, %v", v, err)
	}

	env.Data = []byte(`{"orderId":5}`)
	env.EventType = "sales.order.placed"
	_, err = r.Decode(env)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "data.orderId" {
		t.Errorf("bad data: got %v", err)
	}

	env.EventType = "x.y.z"
	_, err = r.Decode(env)
	if !errors.Is(err, ErrUnknownType) || err.Error() != `unknown event type "x.y.z"` {
		t.Errorf("unknown type: got %v", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	r := NewRegistry()
	if err := RegisterEvent(r, testUserCreated); err != nil {
		t.Fatal(err)
	}
	if err := RegisterEvent(r, testUserCreated); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate RegisterEvent: %v", err)
	}
	if err := r.Register("identity.user.created", orderPlaced{}); err == nil {
		t.Error("duplicate Register succeeded")
	}
	if err := r.Register("Bad.type", orderPlaced{}); err == nil {
		t.Error("invalid type registered")
	}
	if err := r.Register("a.b.c", nil); err == nil {
		t.Error("nil prototype registered")
	}
	if err := RegisterEvent(r, Event[int]{}); err == nil {
		t.Error("zero Event registered")
	}
	if got := r.Types(); len(got) != 1 {
		t.Errorf("failed registrations changed the registry: %v", got)
	}
}

// TestRegistryConcurrent pins the documented concurrency safety; it fails
// under -race if lookups and registration race.
func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry()
	if err := RegisterEvent(r, testUserCreated); err != nil {
		t.Fatal(err)
	}
	env, err := testUserCreated.New("user-42", "identity-service", userCreated{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, ok := r.Lookup("identity.user.created"); !ok {
					errs <- errors.New("lookup failed")
					return
				}
				v, err := r.Decode(env)
				if err != nil || v.(userCreated).UserID != "u1" {
					errs <- fmt.Errorf("decode: %v, %v", v, err)
					return
				}
				if i == 0 {
					if err := r.Register(fmt.Sprintf("test.type.g-%c", 'a'+g), orderPlaced{}); err != nil {
						errs <- err
						return
					}
				}
				_ = r.Types()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(r.Types()); n != 17 {
		t.Errorf("%d types registered, want 17", n)
	}
}

// TestStageOf pins the mapping the bridge uses for the DLQ stage header,
// through wrapping.
func TestStageOf(t *testing.T) {
	_, decErr := Decode([]byte("[]"))
	_, valErr := Decode([]byte("{}"))
	_, bigErr := Decoder{MaxBytes: 1}.Decode([]byte("{}"))
	cases := []struct {
		err  error
		want Stage
		ok   bool
	}{
		{decErr, StageDecode, true},
		{fmt.Errorf("record 3: %w", decErr), StageDecode, true},
		{valErr, StageValidate, true},
		{fmt.Errorf("record 3: %w", valErr), StageValidate, true},
		{bigErr, StageRecordTooLarge, true},
		{errors.New("other"), "", false},
		{nil, "", false},
	}
	for _, tc := range cases {
		got, ok := StageOf(tc.err)
		if got != tc.want || ok != tc.ok {
			t.Errorf("StageOf(%v) = %q, %v; want %q, %v", tc.err, got, ok, tc.want, tc.ok)
		}
	}
}

// TestWireNames pins the header and stage strings: they are contract
// (DESIGN.md §3) and other programs match on them.
func TestWireNames(t *testing.T) {
	names := [][2]string{
		{KafkaHeaderID, "id"},
		{KafkaHeaderEventType, "eventType"},
		{KafkaHeaderAggregateType, "aggregateType"},
		{KafkaHeaderTraceparent, "traceparent"},
		{KafkaHeaderTracestate, "tracestate"},
		{KafkaHeaderReplayID, "replayId"},
		{AMQPHeaderAggregateID, "x-aggregate-id"},
		{AMQPHeaderKafkaTopic, "x-kafka-topic"},
		{AMQPHeaderKafkaPartition, "x-kafka-partition"},
		{AMQPHeaderKafkaOffset, "x-kafka-offset"},
		{AMQPHeaderReplayID, "x-replay-id"},
		{AMQPHeaderReplayCount, "x-replay-count"},
		{AMQPHeaderTraceparent, "traceparent"},
		{AMQPHeaderTracestate, "tracestate"},
		{ContentTypeJSON, "application/json"},
		{DLQHeaderTopic, "__connect.errors.topic"},
		{DLQHeaderPartition, "__connect.errors.partition"},
		{DLQHeaderOffset, "__connect.errors.offset"},
		{DLQHeaderConnectorName, "__connect.errors.connector.name"},
		{DLQHeaderTaskID, "__connect.errors.task.id"},
		{DLQHeaderStage, "__connect.errors.stage"},
		{DLQHeaderClassName, "__connect.errors.class.name"},
		{DLQHeaderExceptionClassName, "__connect.errors.exception.class.name"},
		{DLQHeaderExceptionMessage, "__connect.errors.exception.message"},
		{DLQConnectorName, "messagekit-bridge"},
		{string(StageDecode), "DECODE"},
		{string(StageValidate), "VALIDATE"},
		{string(StageRecordTooLarge), "RECORD_TOO_LARGE"},
		{string(StageAMQPNack), "AMQP_NACK"},
		{StageAMQPUnroutable.String(), "AMQP_UNROUTABLE"},
	}
	for _, n := range names {
		if n[0] != n[1] {
			t.Errorf("constant is %q, want %q", n[0], n[1])
		}
	}
}
