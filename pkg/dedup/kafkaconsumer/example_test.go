package kafkaconsumer_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/kafkaconsumer"
)

type UserCreated struct {
	UserID string `json:"userId"`
	Email  string `json:"email"`
}

var userCreated = contracts.Define[UserCreated]("identity.user.created")

// A complete Kafka-native service: it creates each new user's mailbox once,
// however often Kafka delivers the event, and skips the topic's other event
// types.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	router := dedup.Router{Fallback: dedup.Ignore} // other event types: skip
	dedup.On(&router, userCreated, func(ctx context.Context, tx pgx.Tx, u UserCreated) error {
		_, err := tx.Exec(ctx, "INSERT INTO mailboxes (user_id, address) VALUES ($1, $2)", u.UserID, u.Email)
		return err
	})
	consumer, err := kafkaconsumer.New(kafkaconsumer.Config{
		Brokers:  strings.Split(os.Getenv("KAFKA_BROKERS"), ","),
		Topics:   []string{"events"},
		Consumer: "mailer", // also the consumer group
		Store:    dedup.NewPostgres(pool),
		Handler:  &router, // poison goes to events.dlq
		Logger:   slog.Default(),
		Metrics:  prometheus.DefaultRegisterer,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := consumer.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
