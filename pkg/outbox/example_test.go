package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/outbox"
	"github.com/firstunicorn/messagekit-go/pkg/outbox/outboxsarama"
)

// UserCreated is a producer service's event data.
type UserCreated struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

var userCreated = contracts.Define[UserCreated]("identity.user.created")

// A producer service writes its business row and the event in one
// transaction: both commit, or neither does.
func ExampleWriter_Add() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	var events outbox.Writer // the zero Writer is ready to use

	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO users (id, email) VALUES ($1, $2)", "42", "ada@example.com"); err != nil {
			return err
		}
		ev, err := userCreated.New("user-42", "identity-service", UserCreated{UserID: "42", Email: "ada@example.com"})
		if err != nil {
			return err
		}
		return events.Add(ctx, tx, ev)
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Add checks every event before it touches the database; the error names
// the field.
func ExampleWriter_Add_invalid() {
	var events outbox.Writer
	ev := contracts.Envelope{EventType: "UserCreated"} // not a valid envelope

	err := events.Add(context.Background(), nil, ev) // nothing is sent: no transaction needed here
	var invalid *contracts.ValidationError
	if errors.As(err, &invalid) {
		fmt.Println("field:", invalid.Field)
		fmt.Println(err)
	}
	// Output:
	// field: eventId
	// outbox: event 1 of 1: eventId: must not be the nil UUID
}

// A relay service publishes the outbox to Kafka until SIGTERM. Run as many
// instances as you like: one publishes, the others stand by.
func ExampleRelay() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	kafka := sarama.NewConfig()
	kafka.ClientID = "orders-relay"
	pub, err := outboxsarama.New([]string{"localhost:9092"}, outboxsarama.Config{Sarama: kafka})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()

	relay, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{
		Topic:      "events",
		Logger:     slog.Default(),
		Registerer: prometheus.DefaultRegisterer,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := relay.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Outbox health for an admin endpoint, and a daily clean-up.
func ExampleReadStats() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	stats, err := outbox.ReadStats(ctx, pool, outbox.StatsOptions{}) // {SlotName: "messagekit_outbox"} with Debezium
	if err != nil {
		log.Fatal(err)
	}
	degraded := stats.Pending > 1000 || stats.OldestPendingAge > 300*time.Second
	fmt.Println(stats.Pending, stats.OldestPendingAge, stats.Failed, degraded)

	deleted, err := outbox.Prune(ctx, pool, 7*24*time.Hour, outbox.PruneOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pruned", deleted)
}
