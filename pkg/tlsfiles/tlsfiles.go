package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config names the PEM files of a TLS client. The zero value means TLS with
// the system roots, no client certificate and the server name taken from
// the address dialled.
type Config struct {
	// CAFile is a PEM bundle of the certificate authorities that may sign
	// the server's certificate; empty means the system roots. When set,
	// only these CAs are trusted.
	CAFile string
	// CertFile and KeyFile are the client's certificate (chain) and
	// private key in PEM, for mutual TLS. Both or neither.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry; empty
	// means the host of the address dialled.
	ServerName string
}

// IsZero reports whether c names no file and no server name.
func (c Config) IsZero() bool { return c == Config{} }

// Load reads the files and returns a client configuration with TLS 1.2 or
// later that verifies the server. The error names the file that cannot be
// read or parsed, never its contents; a certificate without its key (or
// the reverse) is an error too.
func (c Config) Load() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			// LoadX509KeyPair's errors name the problem, not the key.
			return nil, fmt.Errorf("client certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case c.CertFile != "":
		return nil, errors.New("a client certificate file needs its key file")
	case c.KeyFile != "":
		return nil, errors.New("a client key file needs its certificate file")
	}
	return tc, nil
}
