package bus

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	Server   *server.Server
	maxStore int64
}

// EmbeddedOptions configures StartEmbedded.
type EmbeddedOptions struct {
	StoreDir string // JetStream file storage; required, so state survives restarts
	Port     int    // 0: no listener (in-process connections only); -1: a random loopback port
	Logger   *slog.Logger
	// MaxStore bounds what JetStream keeps in StoreDir. 0 sizes it to the file system:
	// StoreFraction of its free space plus what the store already holds.
	MaxStore int64
}

// StartEmbedded starts a JetStream-enabled NATS server on loopback (or none at all).
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("starting embedded NATS: a JetStream store directory is required")
	}
	if o.MaxStore <= 0 {
		limit, free, used, err := sizeStore(o.StoreDir)
		if err != nil {
			return nil, fmt.Errorf("starting embedded NATS: %w", err)
		}
		o.MaxStore = limit
		if o.Logger != nil {
			o.Logger.Debug("embedded NATS store sized to its file system", "store", o.StoreDir,
				"max", FormatBytes(limit), "free", FormatBytes(free), "held", FormatBytes(used))
		}
	}
	opts := &server.Options{
		ServerName:        "flatbed-embedded",
		JetStream:         true,
		JetStreamMaxStore: o.MaxStore,
		StoreDir:          o.StoreDir,
		NoSigs:            true,
		NoLog:             o.Logger == nil,
		Host:              "127.0.0.1",
	}
	if o.Port == 0 {
		opts.DontListen = true
	} else {
		opts.Port = o.Port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("starting embedded NATS: %w", err)
	}
	if o.Logger != nil {
		ns.SetLoggerV2(&natsLogger{o.Logger.With("component", "nats-server")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("starting embedded NATS: not ready after 30s (store %s)", o.StoreDir)
	}
	return &Embedded{Server: ns, maxStore: o.MaxStore}, nil
}

// MaxStore is the most JetStream keeps on disk.
func (e *Embedded) MaxStore() int64 { return e.maxStore }

// Connect opens a new in-process client connection.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(e.Server), nats.Name(name))
	if err != nil {
		return nil, fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	return nc, nil
}

// URL is the client URL when the server listens on a port ("" otherwise).
func (e *Embedded) URL() string {
	if e.Server.Addr() == nil {
		return ""
	}
	return e.Server.ClientURL()
}

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
