package contracts_test

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// A Go producer writes the flat shape for Python consumers, and reads theirs.
func ExampleEnvelope_MarshalShape() {
	type UserCreated struct {
		UserID int    `json:"userId"`
		Email  string `json:"email"`
	}
	created := contracts.Define[UserCreated]("identity.user.created")
	e, _ := created.New("user-42", "identity-service", UserCreated{42, "ada@example.com"},
		contracts.WithEventID(uuid.MustParse("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a")),
		contracts.WithOccurredAt(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)))
	flat, _ := e.MarshalShape(contracts.ShapeFlat)
	fmt.Println(string(flat))

	back, _ := contracts.Decode(flat)
	u, _ := created.Decode(back)
	fmt.Println(u.UserID, u.Email)
	// Output:
	// {"eventId":"0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a","eventType":"identity.user.created","aggregateId":"user-42","occurredAt":"2026-11-26T10:00:00Z","source":"identity-service","dataVersion":"1.0","correlationId":null,"causationId":null,"metadata":{},"userId":42,"email":"ada@example.com"}
	// 42 ada@example.com
}
