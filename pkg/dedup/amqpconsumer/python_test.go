package amqpconsumer_test

import (
	"context"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/testenv"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// userCreated is the Go side of the Python fixtures' event.
type userCreated struct {
	UserID      int      `json:"userId"`
	Email       string   `json:"email"`
	DisplayName string   `json:"displayName"`
	Roles       []string `json:"roles"`
}

// A typed Go consumer (dedup.On) of flat events that Python messagekit
// services produce gets every business field: the bodies are what pydantic
// writes (pkg/contracts/testdata/python), as the bridge forwards them, message_id set.
func TestTypedHandlerOfPythonFlatEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	created := contracts.Define[userCreated]("identity.user.created")
	want := map[string]userCreated{
		"user-42": {42, "ada@example.com", "Ada Lovelace é", []string{"admin", "author"}},
		"user-43": {43, "grace@example.com", "Grace", []string{}},
	}
	var msgs []amqp.Publishing
	for _, name := range []string{"user_created.flat-dumps.json", "user_created_correlated.flat.json"} {
		body, err := os.ReadFile("../../contracts/testdata/python/" + name)
		must(t, err)
		env, err := contracts.Decode(body)
		must(t, err)
		msgs = append(msgs, amqp.Publishing{MessageId: env.EventID.String(), Type: env.EventType,
			ContentType: contracts.ContentTypeJSON, DeliveryMode: amqp.Persistent, Body: body})
	}
	f.publish(msgs...)

	var mu sync.Mutex
	got := map[string]userCreated{}
	var r dedup.Router
	dedup.On(&r, created, func(ctx context.Context, _ pgx.Tx, u userCreated) error {
		env, _ := dedup.EnvelopeFrom(ctx)
		mu.Lock()
		got[env.AggregateID] = u
		mu.Unlock()
		return nil
	})
	cfg := f.config()
	cfg.Handler = &r
	f.start(cfg)
	testenv.WaitFor(t, 30*time.Second, "both events handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("handled %+v, want %+v", got, want)
	}
}
