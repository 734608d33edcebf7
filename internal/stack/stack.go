// Package stack runs the whole messagekit pipeline on one machine as real
// processes: the three binaries (bridge, dlq-bookkeeper, admin-api) and the
// example producer and consumer services, each configured only through its
// environment, as a deployment would. `make demo` and the end-to-end suite
// (test/e2e) both use it; Kafka is whatever the caller points it at (an
// in-process kfake in both).
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Binaries are the commands a pipeline runs, relative to the module root.
var Binaries = map[string]string{
	"bridge":         "./cmd/bridge",
	"dlq-bookkeeper": "./cmd/dlq-bookkeeper",
	"admin-api":      "./cmd/admin-api",
	"producer":       "./examples/producer",
	"consumer":       "./examples/consumer",
}

// Build compiles Binaries into dir with `go build`, run from the module
// root moduleDir.
func Build(ctx context.Context, moduleDir, dir string) error {
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, pkg := range []string{"bridge", "dlq-bookkeeper", "admin-api", "producer", "consumer"} {
		args = append(args, Binaries[pkg])
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Names are the Kafka topics, RabbitMQ exchanges and queues, and consumer
// groups a pipeline uses. Tests give each pipeline its own.
type Names struct {
	Topic, DLQTopic              string // Kafka: events, and the bridge's poison records
	Exchange, DLX                string // RabbitMQ
	ConsumerQueue, DLQQueue      string // the example consumer's queue; the dead-letter queue
	BridgeGroup, BookkeeperGroup string
	Consumer                     string // the example consumer's name in processed_messages
	ConnPrefix                   string // prefix of every RabbitMQ connection name
}

// DefaultNames are the names of DESIGN.md §5's defaults.
func DefaultNames() Names {
	return Names{
		Topic: "events", DLQTopic: "events.dlq",
		Exchange: "events", DLX: "events.dlx",
		ConsumerQueue: "fulfilment.orders", DLQQueue: "events.dlq",
		BridgeGroup: "messagekit-bridge", BookkeeperGroup: "messagekit-bookkeeper",
		Consumer:   "fulfilment",
		ConnPrefix: "messagekit-",
	}
}

// Prefixed returns names that all start with p, so that several pipelines
// can share one PostgreSQL server, RabbitMQ broker or Kafka cluster.
func Prefixed(p string) Names {
	d := DefaultNames()
	return Names{
		Topic: p + d.Topic, DLQTopic: p + d.DLQTopic,
		Exchange: p + d.Exchange, DLX: p + d.DLX,
		ConsumerQueue: p + d.ConsumerQueue, DLQQueue: p + d.DLQQueue,
		BridgeGroup: p + d.BridgeGroup, BookkeeperGroup: p + d.BookkeeperGroup,
		Consumer:   p + d.Consumer,
		ConnPrefix: p,
	}
}

// Options configure a Pipeline.
type Options struct {
	BinDir string // the built Binaries
	LogDir string // one log file per process

	DatabaseURL  string // every service's database
	AMQPURL      string
	KafkaBrokers string // comma-separated
	Names        Names

	AdminToken     string
	RejectFraction float64 // of events the example consumer rejects (dead-letters) on first delivery

	// Addrs fixes a process's HTTP listen address by name; the others
	// get a free port on 127.0.0.1.
	Addrs map[string]string
	// Env adds variables to one process's environment by name ("" for
	// all), overriding the pipeline's.
	Env map[string][]string
}

// Pipeline is the set of processes.
type Pipeline struct {
	Bridge, Bookkeeper, Admin, Producer, Consumer *Proc
	opts                                          Options
}

// New prepares the processes; nothing runs until Start.
func New(opts Options) (*Pipeline, error) {
	if opts.Names == (Names{}) {
		opts.Names = DefaultNames()
	}
	n := opts.Names
	common := []string{
		"DATABASE_URL=" + opts.DatabaseURL,
		"AMQP_URL=" + opts.AMQPURL,
		"KAFKA_BROKERS=" + opts.KafkaBrokers,
		"LOG_LEVEL=info",
		"SHUTDOWN_TIMEOUT=20s",
	}
	specs := []struct {
		name string
		env  []string
	}{
		{"bridge", []string{
			"KAFKA_TOPICS=" + n.Topic, "KAFKA_DLQ_TOPIC=" + n.DLQTopic, "KAFKA_GROUP_ID=" + n.BridgeGroup,
			"AMQP_EXCHANGE=" + n.Exchange, "AMQP_DLX=" + n.DLX, "AMQP_CONNECTION_NAME=" + n.ConnPrefix + "bridge",
		}},
		{"dlq-bookkeeper", []string{
			"DLQ_KAFKA_TOPICS=" + n.DLQTopic, "DLQ_QUEUES=" + n.DLQQueue, "DLQ_BINDINGS=#",
			"KAFKA_GROUP_ID=" + n.BookkeeperGroup, "AMQP_DLX=" + n.DLX,
			"AMQP_CONNECTION_NAME=" + n.ConnPrefix + "dlq-bookkeeper",
		}},
		{"admin-api", []string{
			"ADMIN_TOKEN=" + opts.AdminToken, "AMQP_EXCHANGE=" + n.Exchange, "AMQP_DLX=" + n.DLX,
			"OUTBOX_TOPIC=" + n.Topic, "AMQP_CONNECTION_NAME=" + n.ConnPrefix + "admin-api",
		}},
		{"producer", []string{"OUTBOX_TOPIC=" + n.Topic, "RELAY_ENABLED=true"}},
		{"consumer", []string{
			"AMQP_EXCHANGE=" + n.Exchange, "AMQP_DLX=" + n.DLX, "CONSUMER_QUEUE=" + n.ConsumerQueue,
			"CONSUMER_NAME=" + n.Consumer, "AMQP_CONNECTION_NAME=" + n.ConnPrefix + "consumer",
			"REJECT_FRACTION=" + strconv.FormatFloat(opts.RejectFraction, 'g', -1, 64),
		}},
	}
	procs := make(map[string]*Proc, len(specs))
	for _, s := range specs {
		addr := opts.Addrs[s.name]
		if addr == "" {
			var err error
			if addr, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		env := append(os.Environ(), common...)
		env = append(env, s.env...)
		env = append(env, "HTTP_ADDR="+addr)
		env = append(env, opts.Env[""]...)
		env = append(env, opts.Env[s.name]...)
		procs[s.name] = &Proc{
			Name: s.name,
			Path: filepath.Join(opts.BinDir, s.name),
			Env:  env,
			Addr: addr,
			Log:  filepath.Join(opts.LogDir, s.name+".log"),
		}
	}
	return &Pipeline{
		Bridge: procs["bridge"], Bookkeeper: procs["dlq-bookkeeper"], Admin: procs["admin-api"],
		Producer: procs["producer"], Consumer: procs["consumer"],
		opts: opts,
	}, nil
}

// All lists the processes in start order: the services the producer's
// events flow into come up before it.
func (p *Pipeline) All() []*Proc {
	return []*Proc{p.Admin, p.Bookkeeper, p.Bridge, p.Consumer, p.Producer}
}

// Migrate applies the schema with `admin-api migrate`.
func (p *Pipeline) Migrate(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, p.Admin.Path, "migrate")
	cmd.Env = p.Admin.Env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("admin-api migrate: %w\n%s", err, out)
	}
	return nil
}

// Start starts every process and waits until each is ready.
func (p *Pipeline) Start(ctx context.Context) error {
	for _, proc := range p.All() {
		if err := proc.Start(); err != nil {
			return err
		}
		if _, err := proc.WaitReady(ctx, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// StopResult is how one process ended.
type StopResult struct {
	Proc *Proc
	Took time.Duration
	Err  error // nil for exit status 0 within the limit
}

// Stop sends SIGTERM to the running processes, producer first (reverse
// start order), and waits up to limit for each.
func (p *Pipeline) Stop(limit time.Duration) []StopResult {
	all := p.All()
	var out []StopResult
	for i := len(all) - 1; i >= 0; i-- {
		proc := all[i]
		if !proc.Running() {
			continue
		}
		took, err := proc.Stop(limit)
		out = append(out, StopResult{Proc: proc, Took: took, Err: err})
	}
	return out
}

// FirstExit receives the name and exit of the first process that ends
// while the pipeline runs.
func (p *Pipeline) FirstExit() <-chan error {
	out := make(chan error, len(p.All()))
	for _, proc := range p.All() {
		done := proc.Done()
		if done == nil {
			continue
		}
		go func() {
			<-done
			err := proc.ExitErr()
			if err == nil {
				err = errors.New("exit status 0")
			}
			out <- fmt.Errorf("%s exited: %w", proc.Name, err)
		}()
	}
	return out
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
