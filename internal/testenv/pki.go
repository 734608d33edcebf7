package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority for a test: PEM files in a
// temporary directory, for TLS servers (kfake, a proxy in front of
// RabbitMQ, a PostgreSQL cluster of the test's own) and their clients.
type PKI struct {
	Dir    string // where the files are
	CAFile string // the CA certificate, PEM

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	t     testing.TB
	n     int64
}

// NewPKI makes a CA named name whose files live as long as the test.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testenv: CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{Dir: t.TempDir(), ca: ca, caKey: key, t: t, n: 1}
	p.CAFile = p.write("ca.pem", "CERTIFICATE", der)
	return p
}

// Pair is a certificate and its key as PEM files, and loaded.
type Pair struct {
	CertFile, KeyFile string
	Cert              tls.Certificate
}

// Server issues a server certificate for hosts (DNS names or IPs).
func (p *PKI) Server(name string, hosts ...string) Pair {
	return p.issue(name, x509.ExtKeyUsageServerAuth, hosts)
}

// Client issues a client certificate with common name cn.
func (p *PKI) Client(cn string) Pair {
	return p.issue(cn, x509.ExtKeyUsageClientAuth, nil)
}

// Pool returns a pool holding just the CA.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

func (p *PKI) issue(cn string, usage x509.ExtKeyUsage, hosts []string) Pair {
	p.t.Helper()
	key := newKey(p.t)
	p.n++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.n),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatalf("testenv: certificate %s: %v", cn, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	pair := Pair{
		CertFile: p.write(cn+".pem", "CERTIFICATE", der),
		KeyFile:  p.write(cn+"-key.pem", "PRIVATE KEY", keyDER),
	}
	pair.Cert, err = tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	return pair
}

func (p *PKI) write(name, kind string, der []byte) string {
	path := filepath.Join(p.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
