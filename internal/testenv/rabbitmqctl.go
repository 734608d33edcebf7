package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// CloseConnections makes the broker close, as `rabbitmqctl
// close_all_connections` would, every connection whose client-provided
// connection name (amqp091 Config.Properties.SetClientConnectionName) starts
// with prefix, and returns how many it closed. Unlike close_all_connections
// it leaves other tests' connections alone. It needs rabbitmqctl on this
// machine, talking to the broker under test; without it the test is skipped
// (or fails when integration tests are required).
func (b *Broker) CloseConnections(t testing.TB, prefix string) int {
	t.Helper()
	if prefix == "" {
		t.Fatal("testenv: CloseConnections needs a non-empty connection name prefix")
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		unavailable(t, "PATH (rabbitmqctl)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Tab-separated rows "<pid>\t[{"product","…"},{"connection_name","…"},…]";
	// the JSON formatter prints pids in a form close_connection rejects.
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "list_connections", "-q", "--no-table-headers",
		"pid", "client_properties").Output()
	if err != nil {
		t.Fatalf("testenv: rabbitmqctl list_connections: %v", err)
	}
	type conn struct{ pid, name string }
	var conns []conn
	for _, line := range strings.Split(string(out), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if ok {
			conns = append(conns, conn{pid, connectionName(props)})
		}
	}
	closed := 0
	for _, c := range conns {
		if c.name == "" || !strings.HasPrefix(c.name, prefix) {
			continue
		}
		msg, err := exec.CommandContext(ctx, "rabbitmqctl", "close_connection", c.pid, "closed by test "+t.Name()).CombinedOutput()
		if err != nil {
			t.Fatalf("testenv: rabbitmqctl close_connection %s: %v\n%s", c.pid, err, msg)
		}
		closed++
	}
	return closed
}

// connectionName finds {"connection_name","…"} in rabbitmqctl's rendering
// of client properties.
func connectionName(props string) string {
	const key = `{"connection_name","`
	_, rest, ok := strings.Cut(props, key)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// ConnectionName returns a client connection name unique to this test, for
// use with CloseConnections.
func ConnectionName(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("mk-test-%s-%s", slug(t.Name(), 32, '-'), randomHex(4))
}
