package testenv

import (
	"context"
	"errors"
	"fmt"
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

// PostgresTLS is a PostgreSQL cluster a test starts for itself
// (OwnPostgres), listening on 127.0.0.1 at a free port with TLS only
// (hostssl; a plaintext connection is refused), its server certificate
// issued by a test PKI for 127.0.0.1 and localhost. The shared server is
// never touched. The cluster is stopped and removed when the test ends.
type PostgresTLS struct {
	Port int
}

// StartPostgresTLS initialises and starts the cluster with pki's server
// certificate.
func StartPostgresTLS(t testing.TB, pki *PKI) *PostgresTLS {
	t.Helper()
	server := pki.Server("postgres", "127.0.0.1", "localhost")
	c := ownPostgres(t, &server, nil)
	return &PostgresTLS{Port: c.Port}
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
