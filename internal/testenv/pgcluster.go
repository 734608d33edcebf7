package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinVariable names the directory of initdb and pg_ctl, for tests
// that start a PostgreSQL cluster of their own; default
// DefaultPostgresBin.
const PostgresBinVariable = "TEST_POSTGRES_BIN"

// DefaultPostgresBin is where Debian's postgresql-15 package puts them.
const DefaultPostgresBin = "/usr/lib/postgresql/15/bin"

// PostgresTLS is a PostgreSQL cluster a test starts for itself, listening
// on 127.0.0.1 at a free port with TLS only (hostssl; a plaintext
// connection is refused), its server certificate issued by a test PKI for
// 127.0.0.1 and localhost. The shared server is never touched. The cluster
// is stopped and removed when the test ends.
type PostgresTLS struct {
	Port int
	dir  string
}

// StartPostgresTLS initialises and starts the cluster with pki's server
// certificate. As root it runs initdb and pg_ctl as the postgres user
// (PostgreSQL refuses to run as root).
func StartPostgresTLS(t testing.TB, pki *PKI) *PostgresTLS {
	t.Helper()
	skipShort(t)
	bin := envOr(PostgresBinVariable, DefaultPostgresBin)
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		unavailable(t, PostgresBinVariable, err)
	}
	dir, err := os.MkdirTemp("", "messagekit-pg-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	server := pki.Server("postgres", "127.0.0.1", "localhost")
	as := func(name string, args ...string) *exec.Cmd { return exec.Command(filepath.Join(bin, name), args...) }
	var owner *user.User
	if os.Geteuid() == 0 {
		owner, err = user.Lookup("postgres")
		if err != nil {
			unavailable(t, PostgresBinVariable, fmt.Errorf("running as root and no postgres user to run PostgreSQL as: %w", err))
		}
		as = func(name string, args ...string) *exec.Cmd {
			return exec.Command("setpriv", append([]string{"--reuid=" + owner.Uid, "--regid=" + owner.Gid, "--init-groups", "--",
				filepath.Join(bin, name)}, args...)...)
		}
	}
	// PostgreSQL wants the key readable by its owner only.
	for src, dst := range map[string]string{server.CertFile: "server.crt", server.KeyFile: "server.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, dst)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		chown(t, owner, path)
	}
	chown(t, owner, dir)
	data := filepath.Join(dir, "data")
	if out, err := as("initdb", "-D", data, "-U", "root", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	opts := strings.Join([]string{"-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir,
		"-c", "ssl=on", "-c", "ssl_cert_file=" + filepath.Join(dir, "server.crt"), "-c", "ssl_key_file=" + filepath.Join(dir, "server.key"),
		"-c", "fsync=off", "-c", "max_connections=50", "-c", "shared_buffers=16MB"}, " ")
	if out, err := as("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("testenv: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() { _ = as("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run() })
	return &PostgresTLS{Port: port, dir: dir}
}

func chown(t testing.TB, owner *user.User, path string) {
	t.Helper()
	if owner == nil {
		return
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// URL returns a URL of database postgres that verifies the server with
// sslmode=verify-full against the CA in rootCert.
func (p *PostgresTLS) URL(rootCert string) string {
	return fmt.Sprintf("postgres://root@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s&connect_timeout=5", p.Port, rootCert)
}

// Ping connects with url and runs a query.
func (p *PostgresTLS) Ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		return err
	}
	if !ssl {
		return errors.New("connected without TLS")
	}
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
