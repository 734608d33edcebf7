package amqpconsumer_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firstunicorn/messagekit-go/pkg/contracts"
	"github.com/firstunicorn/messagekit-go/pkg/dedup"
	"github.com/firstunicorn/messagekit-go/pkg/dedup/amqpconsumer"
)

type OrderPaid struct {
	OrderID string `json:"orderId"`
	Amount  int64  `json:"amount"`
}

var orderPaid = contracts.Define[OrderPaid]("shop.order.paid")

// A complete billing service: it invoices each paid order once, however
// often RabbitMQ delivers the event, and dead-letters what it cannot handle.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	var router dedup.Router
	dedup.On(&router, orderPaid, func(ctx context.Context, tx pgx.Tx, o OrderPaid) error {
		// Same transaction as the dedup claim: both commit or neither.
		_, err := tx.Exec(ctx, "INSERT INTO invoices (order_id, amount) VALUES ($1, $2)", o.OrderID, o.Amount)
		return err // retried when transient; dedup.Permanent(err) dead-letters at once
	})
	consumer, err := amqpconsumer.New(amqpconsumer.Config{
		URL:      os.Getenv("AMQP_URL"),
		Queue:    "billing.orders",
		Consumer: "billing",
		Store:    dedup.NewPostgres(pool),
		Handler:  &router,
		Declare:  true,           // the queue, its DLX events.dlx, and the bindings
		Bindings: router.Types(), // the bridge routes by event type
		Logger:   slog.Default(),
		Metrics:  prometheus.DefaultRegisterer,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := consumer.Run(ctx); err != nil { // until SIGTERM, then drains
		log.Fatal(err)
	}
}
