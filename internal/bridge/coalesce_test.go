package bridge

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCoalescingConnKeepsOrderAndFlushesOnClose pins that coalescing
// changes only how many write(2) calls carry the bytes: each writer's bytes
// arrive in its order, whole (amqp091 writes one frame sequence per call
// under its own lock), and Close delivers what was pending.
func TestCoalescingConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	var want bytes.Buffer
	for i := range 2000 {
		p := bytes.Repeat([]byte{byte(i)}, 1+i%300)
		want.Write(p)
		if n, err := c.Write(p); err != nil || n != len(p) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = server.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("received %d bytes, want the %d written, in order", len(b), want.Len())
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v, want net.ErrClosed", err)
	}
	_ = c.Close() // a second Close returns at once
}

// TestCoalescingConnPushesBack pins that a peer that stops reading (as
// RabbitMQ does under flow control) blocks the writers once
// coalesceMaxPending bytes wait, instead of buffering without bound.
func TestCoalescingConnPushesBack(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	defer func() { _ = server.Close(); _ = c.Close() }()
	chunk := make([]byte, 64<<10)
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for n < 4*coalesceMaxPending {
			if _, err := c.Write(chunk); err != nil {
				break
			}
			n += len(chunk)
		}
		wrote <- n
	}()
	select {
	case n := <-wrote:
		t.Fatalf("writers were never held back: %d bytes written to a peer that read nothing", n)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.CopyN(io.Discard, server, 4*coalesceMaxPending); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-wrote:
		if n != 4*coalesceMaxPending {
			t.Fatalf("wrote %d bytes, want %d", n, 4*coalesceMaxPending)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writers still blocked after the peer read everything")
	}
}

// TestCoalescingConnSocketErrorClosesConn pins that a failed socket write
// reaches amqp091: its reader's Read fails (the socket is closed) and every
// later Write returns the error.
func TestCoalescingConnSocketErrorClosesConn(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	_ = server.Close() // the peer is gone: the next socket write fails
	var wg sync.WaitGroup
	wg.Add(1)
	readErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	_, _ = c.Write([]byte("frame"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte("frame")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes keep succeeding after the socket failed")
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if err := <-readErr; err == nil {
		t.Fatal("Read succeeded on a failed connection")
	}
	_ = c.Close()
}
