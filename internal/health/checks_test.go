package health_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/firstunicorn/messagekit-go/internal/health"
	"github.com/firstunicorn/messagekit-go/internal/testenv"
)

// closedAddr returns a local address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func check(t *testing.T, c health.Checker) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), health.DefaultTimeout)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx)
	if d := time.Since(start); d > health.DefaultTimeout+time.Second {
		t.Errorf("check took %v, past its deadline", d)
	}
	return err
}

// silentAddr returns the address of a server that accepts connections and
// never answers, like a hung broker.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return l.Addr().String()
}

// TestReadyMadeChecks runs each ready-made check against the real service
// (up), against a closed port (down, with the dial error) and against a
// server that never answers (down within the check's deadline).
func TestReadyMadeChecks(t *testing.T) {
	tests := []struct {
		name string
		up   func(t *testing.T) health.Checker
		down func(t *testing.T, addr string) health.Checker
	}{
		{
			name: "postgres",
			up:   func(t *testing.T) health.Checker { return health.Postgres(testenv.Postgres(t).Pool) },
			down: func(t *testing.T, addr string) health.Checker {
				pool, err := pgxpool.New(context.Background(), "postgres://root@"+addr+"/x?connect_timeout=1")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				return health.Postgres(pool)
			},
		},
		{
			name: "rabbitmq",
			up: func(t *testing.T) health.Checker {
				c := health.RabbitMQ(testenv.RabbitMQ(t).URL)
				t.Cleanup(func() { _ = c.Close() })
				return c
			},
			down: func(t *testing.T, addr string) health.Checker {
				c := health.RabbitMQ("amqp://guest:guest@" + addr + "/")
				t.Cleanup(func() { _ = c.Close() })
				return c
			},
		},
		{
			name: "kafka",
			up:   func(t *testing.T) health.Checker { return health.Kafka(testenv.Kafka(t)) },
			down: func(t *testing.T, addr string) health.Checker { return health.Kafka([]string{addr}) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/up", func(t *testing.T) {
			t.Parallel()
			c := tt.up(t)
			for i := range 2 { // the second call reuses what the first set up
				if err := check(t, c); err != nil {
					t.Fatalf("check %d: %v", i+1, err)
				}
			}
		})
		t.Run(tt.name+"/down", func(t *testing.T) {
			t.Parallel()
			addr := closedAddr(t)
			err := check(t, tt.down(t, addr))
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("check against closed %s = %v, want connection refused", addr, err)
			}
		})
		t.Run(tt.name+"/hung", func(t *testing.T) {
			t.Parallel()
			c := tt.down(t, silentAddr(t))
			const timeout = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			err := c.Check(ctx)
			if d := time.Since(start); err == nil || d > timeout+700*time.Millisecond {
				t.Fatalf("check against a silent server = %v after %v, want an error within %v", err, d, timeout)
			}
		})
	}
}

// TestRabbitMQCheckClose pins that Close is idempotent and that Check fails
// after it.
func TestRabbitMQCheckClose(t *testing.T) {
	broker := testenv.RabbitMQ(t)
	c := health.RabbitMQ(broker.URL)
	if err := check(t, c); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := check(t, c); err == nil {
		t.Fatal("Check after Close succeeded")
	}
}

func TestKafkaCheckNamesEveryBroker(t *testing.T) {
	a, b := closedAddr(t), closedAddr(t)
	err := check(t, health.Kafka([]string{a, b}))
	if err == nil || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("err = %v, want both brokers named", err)
	}
	if err := check(t, health.Kafka(nil)); err == nil {
		t.Fatal("Kafka(nil) check succeeded")
	}
}
