package dedup_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
)

// Handle runs the handler once per event id; a redelivery is reported as a
// duplicate without running it.
func ExampleHandle() {
	ctx := context.Background()
	store := dedup.NewMemory() // dedup.NewPostgres(pool) in production
	eventID := uuid.MustParse("0193f0c4-8a4e-7c2d-9b1e-3f5a6b7c8d9e")
	for range 2 { // the broker delivers the event twice
		res, err := dedup.Handle(ctx, store, "billing", eventID, func(ctx context.Context, tx pgx.Tx) error {
			fmt.Println("charging the customer")
			return nil // with Postgres: tx.Exec(ctx, "INSERT INTO invoices …")
		})
		fmt.Println(res, err)
	}
	// Output:
	// charging the customer
	// handled <nil>
	// duplicate <nil>
}

type UserCreated struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

var userCreated = contracts.Define[UserCreated]("identity.user.created")

// A Router gives each event type a typed handler; a Processor decodes,
// deduplicates and routes raw messages as a broker consumer receives them.
func ExampleOn() {
	var router dedup.Router
	dedup.On(&router, userCreated, func(ctx context.Context, tx pgx.Tx, u UserCreated) error {
		env, _ := dedup.EnvelopeFrom(ctx)
		fmt.Println("welcome", u.Email, "from", env.Source)
		return nil
	})
	p, err := dedup.NewProcessor(dedup.ProcessorConfig{
		Store: dedup.NewMemory(), Consumer: "mailer", Handler: &router,
	})
	if err != nil {
		log.Fatal(err)
	}
	env, _ := userCreated.New("user-42", "identity-service", UserCreated{UserID: "42", Email: "ada@example.com"})
	body, _ := env.MarshalJSON()
	out, _ := p.Process(context.Background(), []dedup.Message{
		{Body: body}, {Body: body}, {Body: []byte(`{"not":"an envelope"}`)},
	})
	for _, o := range out {
		if o.Result == dedup.DeadLetter {
			fmt.Println(o.Result, o.Stage) // the caller dead-letters it
			continue
		}
		fmt.Println(o.Result) // the caller acknowledges it
	}
	// Output:
	// welcome ada@example.com from identity-service
	// handled
	// duplicate
	// dead-letter VALIDATE
}

// Claiming inside a transaction of one's own, and pruning old ids.
func ExamplePostgres() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost:5432/billing")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := dedup.NewPostgres(pool)
	eventID := uuid.New()

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		isNew, err := store.Claim(ctx, tx, "billing", eventID)
		if err != nil || !isNew {
			return err // a duplicate: nothing to do
		}
		_, err = tx.Exec(ctx, "INSERT INTO invoices (event_id) VALUES ($1)", eventID)
		return err
	})
	if err != nil {
		log.Print(err)
	}

	// Keep 14 days of ids: longer than any message can be redelivered after.
	n, err := store.Prune(ctx, 14*24*time.Hour, 0)
	log.Printf("pruned %d ids (%v)", n, err)
}
