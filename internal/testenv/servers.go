package testenv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The servers of this file are a test's own, so that the test may kill
// them: they run as processes of the test, on ports of their own, with
// their data in a temporary directory, and the shared servers of the
// suite are never touched.

// serverStartTimeout bounds a server's (re)start, slow on a loaded machine.
const serverStartTimeout = 2 * time.Minute

// serverPort returns a port that is free now, outside the kernel's ephemeral
// range (32768-60999 by default), so that an outgoing connection does not
// take it between this check and the server's bind.
func serverPort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if p == 25672 { // the shared RabbitMQ node's distribution port
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			_ = l.Close()
			return p, nil
		}
	}
	return 0, errors.New("testenv: no free port in 20000-32000")
}

// serverProc is one run of a server's process, in a process group of its
// own so that a kill takes its children too.
type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(cmd *exec.Cmd, log string) (*serverProc, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, err
	}
	p := &serverProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// kill sends SIGKILL to the run's process group and waits for its leader.
func (p *serverProc) kill() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *serverProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitTCP waits until addr accepts connections, the run exits or limit
// passes.
func waitTCP(addr string, p *serverProc, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("exited before listening on %s: %v", addr, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s: %w", addr, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// RabbitNode is a RabbitMQ node of the test's own: another node name, AMQP
// and distribution ports of its own, its database and logs in a temporary
// directory, no plugins. It is killed and its directory removed when the
// test ends.
type RabbitNode struct {
	// URL connects to the node.
	URL string
	// Node is the Erlang node name, for rabbitmqctl -n.
	Node string
	// Dir holds the node's database, logs and Erlang cookie.
	Dir string

	server, ctl string
	env         []string
	addr        string

	mu   sync.Mutex
	proc *serverProc
}

// rabbitBin finds a RabbitMQ script: the package's own (which runs as the
// calling user, unlike the Debian wrapper in /usr/sbin that switches to
// the rabbitmq user), else the one on PATH.
func rabbitBin(name string) (string, error) {
	own := filepath.Join("/usr/lib/rabbitmq/bin", name)
	if _, err := os.Stat(own); err == nil {
		return own, nil
	}
	return exec.LookPath(name)
}

// OwnRabbitMQ starts a RabbitMQ node for this test and waits until it
// accepts AMQP connections. It needs rabbitmq-server on this machine;
// without it the test is skipped (or fails when integration tests are
// required).
func OwnRabbitMQ(t testing.TB) *RabbitNode {
	t.Helper()
	skipShort(t)
	server, err := rabbitBin("rabbitmq-server")
	if err != nil {
		unavailable(t, "PATH (rabbitmq-server)", err)
	}
	ctl, err := rabbitBin("rabbitmqctl")
	if err != nil {
		unavailable(t, "PATH (rabbitmqctl)", err)
	}
	dir, err := os.MkdirTemp("", "messagekit-rabbitmq-")
	if err != nil {
		t.Fatal(err)
	}
	port, err := serverPort()
	if err != nil {
		t.Fatal(err)
	}
	dist, err := serverPort()
	if err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	node := "mk-" + randomHex(4) + "@localhost"
	n := &RabbitNode{
		URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), Node: node, Dir: dir,
		server: server, ctl: ctl, addr: fmt.Sprintf("127.0.0.1:%d", port),
		env: append(os.Environ(),
			"HOME="+dir, // the Erlang cookie the node and rabbitmqctl share
			"RABBITMQ_NODENAME="+node,
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
			"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
			"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"), // none: defaults
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		),
	}
	t.Cleanup(func() {
		n.mu.Lock()
		n.proc.kill()
		n.mu.Unlock()
		if t.Failed() {
			t.Logf("RabbitMQ node %s kept in %s", node, dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// Start starts the node's process (after Kill, with its database as the
// kill left it) and waits until it accepts AMQP connections.
func (n *RabbitNode) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("testenv: RabbitMQ node %s is running", n.Node)
	}
	cmd := exec.Command(n.server)
	cmd.Env, cmd.Dir = n.env, n.Dir
	p, err := startProc(cmd, filepath.Join(n.Dir, "server.out"))
	if err != nil {
		return fmt.Errorf("testenv: start RabbitMQ node %s: %w", n.Node, err)
	}
	n.proc = p
	if err := waitTCP(n.addr, p, serverStartTimeout); err != nil {
		return fmt.Errorf("testenv: RabbitMQ node %s: %w (see %s)", n.Node, err, n.Dir)
	}
	// The port opens before the broker takes logins (a dial then is reset):
	// wait for an AMQP handshake.
	deadline := time.Now().Add(serverStartTimeout)
	for {
		conn, err := amqp.Dial(n.URL)
		if err == nil {
			return conn.Close()
		}
		if p.exited() || time.Now().After(deadline) {
			return fmt.Errorf("testenv: RabbitMQ node %s takes no AMQP connection: %w (see %s)", n.Node, err, n.Dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill kills the node with SIGKILL, as a crash or the OOM killer would.
func (n *RabbitNode) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.proc.kill()
}

// StopApp stops the RabbitMQ application, leaving the Erlang node up
// (rabbitmqctl stop_app): connections are closed and refused.
func (n *RabbitNode) StopApp() error { return n.Ctl("stop_app") }

// StartApp starts the application again and waits for the AMQP listener.
func (n *RabbitNode) StartApp() error {
	if err := n.Ctl("start_app"); err != nil {
		return err
	}
	return waitTCP(n.addr, nil, serverStartTimeout)
}

// Ctl runs rabbitmqctl against the node.
func (n *RabbitNode) Ctl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.ctl, append([]string{"-n", n.Node}, args...)...)
	cmd.Env = n.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: rabbitmqctl -n %s %v: %w\n%s", n.Node, args, err, out)
	}
	return nil
}

// PGCluster is a PostgreSQL cluster of the test's own (initdb and pg_ctl on
// another port, its data in a temporary directory), with the role root and
// the database test, trust authentication. It is stopped and removed when
// the test ends. It is the one way the tests start a PostgreSQL server:
// OwnPostgres for a server to stop or kill, PrivatePostgres for one with
// other settings, StartPostgresTLS for one that takes TLS only.
type PGCluster struct {
	// URL connects to its database test as root (without TLS: see
	// StartPostgresTLS for a cluster that refuses it).
	URL string
	// Dir is the data directory.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int

	bin  string
	opts string
	cred *syscall.Credential
	log  string
}

// OwnPostgres creates and starts a PostgreSQL cluster for this test, with
// the given server settings (e.g. "wal_level=logical") on top of the
// defaults. As root, the server runs as the postgres user. Without initdb
// (PostgresBinVariable, default DefaultPostgresBin) the test is skipped (or
// fails when integration tests are required).
func OwnPostgres(t testing.TB, settings ...string) *PGCluster {
	t.Helper()
	return ownPostgres(t, nil, settings)
}

// ownPostgres is OwnPostgres; with tlsPair, the server takes TLS
// connections only (hostssl), with that certificate.
func ownPostgres(t testing.TB, tlsPair *Pair, settings []string) *PGCluster {
	t.Helper()
	skipShort(t)
	bin := envOr(PostgresBinVariable, DefaultPostgresBin)
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		unavailable(t, PostgresBinVariable, err)
	}
	dir, err := os.MkdirTemp("", "messagekit-pg-")
	if err != nil {
		t.Fatal(err)
	}
	port, err := serverPort()
	if err != nil {
		t.Fatal(err)
	}
	c := &PGCluster{
		URL: fmt.Sprintf("postgres://root@127.0.0.1:%d/test?sslmode=disable", port),
		Dir: filepath.Join(dir, "data"), Port: port, bin: bin, log: filepath.Join(dir, "server.log"),
	}
	owner := func(string) error { return nil }
	if os.Geteuid() == 0 { // postgres refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, "user postgres", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		owner = func(path string) error { return os.Chown(path, uid, gid) }
	}
	if err := owner(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.pgctl("stop", "-m", "immediate")
		if t.Failed() {
			t.Logf("PostgreSQL cluster kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	if err := c.run(filepath.Join(bin, "initdb"), "-D", c.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatal(err)
	}
	c.opts = fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c shared_buffers=32MB",
		port, c.Dir)
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if tlsPair != nil {
		// PostgreSQL wants the key readable by its owner only.
		for src, dst := range map[string]string{tlsPair.CertFile: "server.crt", tlsPair.KeyFile: "server.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, dst)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := owner(path); err != nil {
				t.Fatal(err)
			}
		}
		hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
		if err := os.WriteFile(filepath.Join(c.Dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
			t.Fatal(err)
		}
		c.opts += fmt.Sprintf(" -c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s",
			filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
		admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=require", port)
	}
	for _, s := range settings {
		c.opts += " -c " + s
	}
	if err := c.Start(); err != nil {
		log, _ := os.ReadFile(c.log)
		t.Fatalf("%v\n%s", err, log)
	}
	for _, sql := range []string{"CREATE ROLE root SUPERUSER LOGIN", "CREATE DATABASE test OWNER root"} {
		if err := adminExec(context.Background(), admin, sql); err != nil {
			t.Fatalf("testenv: own PostgreSQL: %s: %v", sql, err)
		}
	}
	return c
}

func (c *PGCluster) run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: %s %v: %w\n%s", filepath.Base(name), args, err, out)
	}
	return nil
}

func (c *PGCluster) pgctl(args ...string) error {
	return c.run(filepath.Join(c.bin, "pg_ctl"), append(args, "-D", c.Dir)...)
}

// Start starts the server (again, after Stop: with crash recovery after
// an immediate stop) and waits until it accepts connections.
func (c *PGCluster) Start() error {
	if err := c.pgctl("start", "-w", "-t", "120", "-l", c.log, "-o", c.opts); err != nil {
		return err
	}
	return waitTCP(fmt.Sprintf("127.0.0.1:%d", c.Port), nil, serverStartTimeout)
}

// Stop stops the server with pg_ctl's mode: "immediate" aborts every
// backend without a checkpoint, as a crash would; "fast" disconnects the
// clients and shuts down cleanly.
func (c *PGCluster) Stop(mode string) error { return c.pgctl("stop", "-m", mode, "-w") }
