package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus"
	"github.com/firstunicorn/messagekit-go/pkg/eventbus/eventbustest"
)

// UserCreatedData is a producer service's event data.
type UserCreatedData struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

var (
	UserCreated   = contracts.Define[UserCreatedData]("identity.user.created")
	thingHappened = contracts.Define[eventbustest.Data]("test.thing.happened")
)

func newUserCreated(id string) contracts.Envelope {
	env, err := UserCreated.New("user-"+id, "identity-service", UserCreatedData{UserID: id, Email: id + "@example.com"})
	if err != nil {
		panic(err)
	}
	return env
}

// Typed handlers receive the decoded data; several handlers of one type run
// in registration order with the default synchronous backend.
func ExampleSubscribe() {
	bus := eventbus.New(eventbus.Config{})
	ctx := context.Background()
	_, _ = eventbus.Subscribe(bus, UserCreated, func(_ context.Context, u UserCreatedData) error {
		fmt.Println("send welcome mail to", u.Email)
		return nil
	})
	_, _ = eventbus.SubscribeMessage(bus, UserCreated, func(_ context.Context, m eventbus.Message, u UserCreatedData) error {
		fmt.Println("audit", m.Envelope.EventType, "for", m.Envelope.AggregateID)
		return nil
	})
	if err := bus.Dispatch(ctx, newUserCreated("42")); err != nil {
		log.Fatal(err)
	}
	// Output:
	// send welcome mail to 42@example.com
	// audit identity.user.created for user-42
}

// Unsubscribe removes a handler, also from inside a handler: here a
// one-shot handler.
func ExampleSubscription_Unsubscribe() {
	bus := eventbus.New(eventbus.Config{})
	var once *eventbus.Subscription
	once, _ = eventbus.Subscribe(bus, UserCreated, func(_ context.Context, u UserCreatedData) error {
		fmt.Println("first user:", u.UserID)
		once.Unsubscribe()
		return nil
	})
	for _, id := range []string{"1", "2"} {
		_ = bus.Dispatch(context.Background(), newUserCreated(id))
	}
	// Output:
	// first user: 1
}

// Every handler runs; their errors come back joined, each naming its
// handler, and a panic becomes an error too.
func ExampleBus_Dispatch_errors() {
	bus := eventbus.New(eventbus.Config{})
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error {
		return errors.New("mail server down")
	}, eventbus.WithName("welcome-mail"))
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error {
		panic("nil map")
	}, eventbus.WithName("crm-sync"))

	err := bus.Dispatch(context.Background(), newUserCreated("42"))
	fmt.Println(err)
	var he *eventbus.HandlerError
	if errors.As(err, &he) {
		fmt.Println("first failure:", he.Handler)
	}
	// Output:
	// handler welcome-mail: mail server down
	// handler crm-sync: panic: nil map
	// first failure: welcome-mail
}

// The concurrent backend runs a dispatch's handlers in parallel on bounded
// workers; Dispatch still waits for all of them.
func ExampleNewConcurrent() {
	backend, err := eventbus.NewConcurrent(eventbus.ConcurrentConfig{Workers: 4})
	if err != nil {
		log.Fatal(err)
	}
	bus := eventbus.New(eventbus.Config{Backend: backend})
	results := make(chan string, 2)
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error { results <- "indexed"; return nil })
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error { results <- "mailed"; return nil })
	if err := bus.Dispatch(context.Background(), newUserCreated("42")); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(results), "handlers done") // no order among them
	// Output:
	// 2 handlers done
}

// Hooks observe every handler call (with its name and duration) and can
// not break dispatch, even by panicking.
func ExampleHooks() {
	bus := eventbus.New(eventbus.Config{Hooks: eventbus.Hooks{
		BeforeDispatch: func(_ context.Context, i eventbus.HookInfo) {
			fmt.Println("dispatching", i.Envelope.EventType, "to", i.Handlers, "handlers")
		},
		HandlerSucceeded: func(_ context.Context, i eventbus.HookInfo) {
			fmt.Println("ok:", i.Handler, i.Duration >= 0)
		},
		HandlerFailed: func(_ context.Context, i eventbus.HookInfo) {
			fmt.Println("failed:", i.Handler)
			panic("a buggy metrics hook") // recovered and logged
		},
	}})
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error { return nil },
		eventbus.WithName("welcome-mail"))
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error { return errors.New("down") },
		eventbus.WithName("crm-sync"))
	fmt.Println(bus.Dispatch(context.Background(), newUserCreated("42")))
	// Output:
	// dispatching identity.user.created to 2 handlers
	// ok: welcome-mail true
	// failed: crm-sync
	// handler crm-sync: down
}

// A disabled bus drops events; the DispatchDisabled hook sees each one.
func ExampleBus_SetEnabled() {
	bus := eventbus.New(eventbus.Config{Hooks: eventbus.Hooks{
		DispatchDisabled: func(_ context.Context, i eventbus.HookInfo) { fmt.Println("dropped", i.Envelope.AggregateID) },
	}})
	_, _ = eventbus.Subscribe(bus, UserCreated, func(_ context.Context, u UserCreatedData) error {
		fmt.Println("handled", u.UserID)
		return nil
	})
	bus.SetEnabled(false)
	fmt.Println(bus.Dispatch(context.Background(), newUserCreated("1")))
	bus.SetEnabled(true)
	fmt.Println(bus.Dispatch(context.Background(), newUserCreated("2")))
	// Output:
	// dropped user-1
	// <nil>
	// handled 2
	// <nil>
}

// Debug logs each dispatch through the bus's logger at debug level.
func ExampleConfig_debug() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { // drop what varies between runs
			switch a.Key {
			case slog.TimeKey, "duration", "eventId":
				return slog.Attr{}
			}
			return a
		},
	}))
	bus := eventbus.New(eventbus.Config{Debug: true, Logger: logger})
	_, _ = eventbus.Subscribe(bus, UserCreated, func(context.Context, UserCreatedData) error { return nil })
	_ = bus.Dispatch(context.Background(), newUserCreated("42"))
	// Output:
	// level=DEBUG msg="eventbus: dispatched" eventType=identity.user.created aggregateId=user-42 handlers=1
}

// The outbox as a handler: DispatchTx inside the business transaction
// writes every event to the outbox in that transaction, so the user row and
// its event commit together or not at all. The transaction is an explicit
// argument that handlers receive in Message.Tx.
func ExampleOutboxHandler() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	bus := eventbus.New(eventbus.Config{})
	if _, err := bus.SubscribeAll(eventbus.OutboxHandler(nil), eventbus.WithName("outbox")); err != nil {
		log.Fatal(err)
	}

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, email) VALUES ($1, $2)", "42", "ada@example.com"); err != nil {
			return err
		}
		return bus.DispatchTx(ctx, tx, newUserCreated("42"))
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Without a transaction the outbox handler writes nothing and says why.
func ExampleOutboxHandler_noTx() {
	bus := eventbus.New(eventbus.Config{})
	_, _ = bus.SubscribeAll(eventbus.OutboxHandler(nil), eventbus.WithName("outbox"))
	err := bus.Dispatch(context.Background(), newUserCreated("42"))
	fmt.Println(errors.Is(err, eventbus.ErrNoTx))
	// Output:
	// true
}

// Envelope-level handlers get the event undecoded, for one type
// (SubscribeEnvelope) or for all (SubscribeAll), e.g. to forward or audit.
func ExampleBus_SubscribeEnvelope() {
	bus := eventbus.New(eventbus.Config{})
	_, _ = bus.SubscribeEnvelope("identity.user.created", func(_ context.Context, m eventbus.Message) error {
		fmt.Println("raw data:", string(m.Envelope.Data))
		return nil
	})
	_, _ = bus.SubscribeAll(func(_ context.Context, m eventbus.Message) error {
		fmt.Println("audit:", m.Envelope.EventType)
		return nil
	})
	_ = bus.Dispatch(context.Background(), newUserCreated("42"))
	// Output:
	// raw data: {"userId":"42","email":"42@example.com"}
	// audit: identity.user.created
}
