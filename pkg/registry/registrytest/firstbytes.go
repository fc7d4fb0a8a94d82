package registrytest

import (
	"net"
	"sync"
)

// FirstBytes is a listener that records the first byte each connection it accepts sends,
// to tell the connections that opened with a TLS handshake (a record of type 0x16) from
// plain-HTTP ones ("GET …").
type FirstBytes struct {
	net.Listener

	mu    sync.Mutex
	first []byte
}

// Accept accepts a connection whose first byte is recorded when it is read.
func (l *FirstBytes) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &firstByteConn{Conn: c, l: l}, nil
}

// Reset forgets what was recorded.
func (l *FirstBytes) Reset() {
	l.mu.Lock()
	l.first = nil
	l.mu.Unlock()
}

// TLSHandshakes returns how many of the connections that sent something opened with a TLS
// handshake, and how many sent something.
func (l *FirstBytes) TLSHandshakes() (handshakes, all int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.first {
		if b == 0x16 {
			handshakes++
		}
	}
	return handshakes, len(l.first)
}

type firstByteConn struct {
	net.Conn
	l    *FirstBytes
	once sync.Once
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() {
			c.l.mu.Lock()
			c.l.first = append(c.l.first, p[0])
			c.l.mu.Unlock()
		})
	}
	return n, err
}
