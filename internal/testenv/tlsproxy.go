package testenv

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// TLSProxy terminates TLS in front of a plaintext server, the way a TLS
// listener of the server itself would: a test reaches the shared RabbitMQ
// over amqps:// without reconfiguring it.
type TLSProxy struct {
	// Addr is the proxy's listening address, 127.0.0.1:port.
	Addr string
	// Verified counts the connections whose client presented a
	// certificate that verified (with tls.RequireAndVerifyClientCert).
	Verified atomic.Int64
	// Refused counts failed handshakes.
	Refused atomic.Int64
}

// StartTLSProxy listens with tc and forwards every connection to upstream
// once the handshake is done. It stops when the test ends.
func StartTLSProxy(t testing.TB, upstream string, tc *tls.Config) *TLSProxy {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	p := &TLSProxy{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				tlsConn := c.(*tls.Conn)
				if err := tlsConn.Handshake(); err != nil {
					p.Refused.Add(1)
					return
				}
				if len(tlsConn.ConnectionState().VerifiedChains) > 0 {
					p.Verified.Add(1)
				}
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				mu.Lock()
				open = append(open, c, up)
				mu.Unlock()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return p
}
