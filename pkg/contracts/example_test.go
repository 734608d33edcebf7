package contracts_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/google/uuid"
)

func ExampleNew() {
	env, err := contracts.New("identity.user.created", "user-42", "identity-service",
		map[string]any{"email": "ada@example.com"},
		// Fixed id and time keep the output stable; normally New fills them.
		contracts.WithEventID(uuid.MustParse("0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e")),
		contracts.WithOccurredAt(time.Date(2026, 11, 26, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))),
		contracts.WithCorrelationID("signup-7"),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := env.MarshalJSON()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b))
	// Output:
	// {"eventId":"0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e","eventType":"identity.user.created","aggregateId":"user-42","occurredAt":"2026-11-26T10:00:00.123456Z","source":"identity-service","dataVersion":"1.0","correlationId":"signup-7","metadata":{},"data":{"email":"ada@example.com"}}
}

func ExampleDecode() {
	// snake_case from the Python messagekit, with a zone offset.
	body := []byte(`{"event_id":"0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e","event_type":"identity.user.created",
		"aggregate_id":"user-42","occurred_at":"2026-11-26T12:00:00.5+02:00","source":"identity-service",
		"data":{"email":"ada@example.com"}}`)
	env, err := contracts.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(env.EventType, env.AggregateID, env.OccurredAt.Format(contracts.TimeLayout), env.DataVersion, string(env.Data))

	_, err = contracts.Decode([]byte(`{"eventId":"abc"}`))
	var ve *contracts.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Field, "->", err)
	}
	_, err = contracts.Decode([]byte(`[1,2,3]`))
	stage, _ := contracts.StageOf(err)
	fmt.Println(stage, "->", err)
	// Output:
	// identity.user.created user-42 2026-11-26T10:00:00.500000Z 1.0 {"email":"ada@example.com"}
	// eventId -> eventId: not a UUID: "abc"
	// DECODE -> decode envelope: not a JSON object (got array)
}

type UserCreated struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

var userCreated = contracts.Define[UserCreated]("identity.user.created")

func ExampleDefine() {
	env, err := userCreated.New("user-42", "identity-service",
		UserCreated{UserID: "42", Email: "ada@example.com"},
		contracts.WithOccurredAt(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(userCreated.Name(), string(env.Data))

	data, err := userCreated.Decode(env)
	fmt.Printf("%+v %v\n", data, err)

	env.EventType = "identity.user.deleted"
	_, err = userCreated.Decode(env)
	fmt.Println(err)
	// Output:
	// identity.user.created {"userId":"42","email":"ada@example.com"}
	// {UserID:42 Email:ada@example.com} <nil>
	// eventType: is "identity.user.deleted", want "identity.user.created"
}

type OrderPlaced struct {
	OrderID string `json:"orderId"`
}

func ExampleRegistry() {
	reg := contracts.NewRegistry()
	if err := contracts.RegisterEvent(reg, userCreated); err != nil {
		fmt.Println(err)
		return
	}
	if err := reg.Register("sales.order.placed", OrderPlaced{}); err != nil {
		fmt.Println(err)
		return
	}

	body := []byte(`{"eventId":"0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e","eventType":"sales.order.placed",
		"aggregateId":"order-9","occurredAt":"2026-11-26T10:00:00Z","source":"sales","data":{"orderId":"9"}}`)
	env, err := contracts.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := reg.Decode(env)
	if err != nil {
		fmt.Println(err)
		return
	}
	switch v := v.(type) {
	case UserCreated:
		fmt.Println("user", v.UserID)
	case OrderPlaced:
		fmt.Println("order", v.OrderID)
	}

	env.EventType = "sales.order.cancelled"
	_, err = reg.Decode(env)
	fmt.Println(errors.Is(err, contracts.ErrUnknownType), err)
	// Output:
	// order 9
	// true unknown event type "sales.order.cancelled"
}
