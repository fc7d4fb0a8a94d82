package bus

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// conns are the NATS connections a bus opened, watched so that its health follows them and
// an operator reads every disconnect, reconnect and asynchronous error in the log.
type conns struct {
	mu   sync.Mutex
	list []*watched
}

type watched struct {
	name string
	nc   *nats.Conn

	mu      sync.Mutex
	downAt  time.Time // when the connection was last lost; zero while connected
	closing bool      // the bus closes it: not worth a warning
}

// connect opens a connection with o.Connect, refuses a server too old for the bus, and
// watches the connection.
func (b *Bus) connect(name string) (*nats.Conn, error) {
	nc, err := b.opts.Connect(name)
	if err != nil {
		return nil, err
	}
	if err := CheckServerVersion(nc.ConnectedServerVersion()); err != nil {
		where := nc.ConnectedUrlRedacted()
		nc.Close()
		if where == "" {
			where = "the embedded server"
		}
		return nil, fmt.Errorf("connecting to NATS at %s: %w", where, err)
	}
	w := &watched{name: name, nc: nc}
	log := b.log.With("connection", name)
	nc.SetDisconnectErrHandler(func(nc *nats.Conn, err error) {
		w.mu.Lock()
		w.downAt = time.Now()
		quiet := w.closing
		w.mu.Unlock()
		if !quiet {
			log.Warn("NATS connection lost, reconnecting", "err", err)
		}
	})
	nc.SetReconnectHandler(func(nc *nats.Conn) {
		w.mu.Lock()
		down := time.Since(w.downAt)
		w.downAt = time.Time{}
		w.mu.Unlock()
		log.Info("NATS connection restored", "server", nc.ConnectedUrlRedacted(), "down", down.Round(time.Millisecond).String())
	})
	nc.SetClosedHandler(func(nc *nats.Conn) {
		w.mu.Lock()
		quiet := w.closing
		w.mu.Unlock()
		if quiet {
			log.Debug("NATS connection closed")
			return
		}
		log.Error("NATS connection closed; this process no longer reaches NATS", "err", nc.LastError())
	})
	nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			log.Error("NATS error", "subject", sub.Subject, "err", err)
			return
		}
		log.Error("NATS error", "err", err)
	})
	b.conns.mu.Lock()
	b.conns.list = append(b.conns.list, w)
	b.conns.mu.Unlock()
	return nc, nil
}

// Healthy says whether every NATS connection of the bus is up; the error names the first
// one that is not, and for how long.
func (b *Bus) Healthy() error {
	b.conns.mu.Lock()
	defer b.conns.mu.Unlock()
	for _, w := range b.conns.list {
		if s := w.nc.Status(); s != nats.CONNECTED {
			w.mu.Lock()
			since := w.downAt
			w.mu.Unlock()
			if since.IsZero() {
				return fmt.Errorf("NATS connection %s is %s", w.name, s)
			}
			return fmt.Errorf("NATS connection %s is %s (down for %s)", w.name, s, time.Since(since).Round(time.Second))
		}
	}
	return nil
}

// closeAll closes every connection, quietly.
func (c *conns) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.list {
		w.mu.Lock()
		w.closing = true
		w.mu.Unlock()
		w.nc.Close()
	}
}
