package bridge

import (
	"net"
	"sync"
	"time"
)

// coalesceMaxPending is how many bytes a coalescingConn holds before its
// writers wait for the socket: the push-back of RabbitMQ's flow control
// still reaches the publishers.
const coalesceMaxPending = 1 << 20

// coalesceCloseWait bounds how long Close waits for the pending bytes (the
// connection.close frame) to be written.
const coalesceCloseWait = time.Second

// coalescingConn batches the writes of the bridge's AMQP connection.
// amqp091 flushes its buffer after every publish: one write(2) per message,
// the largest single cost of a publish. Here a write only appends to a
// buffer, and one goroutine writes the buffer to the socket, so every
// publish (of all partitions) made while a write is in progress goes out in
// the next one. Bytes go out in the order they were written, and a write
// returns only after its bytes are buffered, so amqp091's framing and its
// confirm accounting are unchanged; a publish is still only done when
// RabbitMQ confirms it. The first socket error closes the socket, so
// amqp091's reader fails and shuts the connection down as it would have,
// and every later Write returns that error.
type coalescingConn struct {
	net.Conn

	mu     sync.Mutex
	cond   *sync.Cond // pending bytes, drained bytes, an error or Close
	buf    []byte
	err    error
	closed bool
	done   chan struct{} // closed when the writer goroutine returned
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, done: make(chan struct{})}
	cc.cond = sync.NewCond(&cc.mu)
	go cc.writeLoop()
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closed && len(c.buf) >= coalesceMaxPending {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	}
	wake := len(c.buf) == 0 // else the writer has not taken the buffer yet
	c.buf = append(c.buf, p...)
	if wake {
		c.cond.Broadcast()
	}
	return len(p), nil
}

// writeLoop writes whatever is buffered, one write at a time, until Close
// (after writing what was left) or a socket error.
func (c *coalescingConn) writeLoop() {
	defer close(c.done)
	var out []byte
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.buf) == 0 { // closed and drained
			return
		}
		out, c.buf = c.buf, out[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		if err != nil {
			c.err = err
			c.buf = nil
			c.cond.Broadcast()
			_ = c.Conn.Close() // unblocks amqp091's reader
			return
		}
		c.cond.Broadcast() // room for waiting writers
	}
}

// Close writes what is pending (waiting at most coalesceCloseWait) and
// closes the socket. It is safe to call more than once.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(coalesceCloseWait))
	<-c.done
	return c.Conn.Close()
}
