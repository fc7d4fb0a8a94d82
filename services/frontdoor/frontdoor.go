package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/wishlist"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "frontdoor"

const source = "flatbed/" + Name

// DefaultAddr is where the front door listens unless told otherwise: loopback only.
const DefaultAddr = "127.0.0.1:8780"

// ConsumerInactiveThreshold is how long the front door's durable consumers (Name, following
// the images' states, and NotifyConsumer, the outbound webhook) outlive a front door that
// stopped: the server then deletes them. They are not among events.Consumers (which every
// process declares), so nothing else would ever take their events, and the janitor (bus.Sweep)
// keeps every event above the oldest one a consumer still needs: a front door run once and
// never again would hold the whole stream until it filled. A week outlasts a weekend or a
// holiday of the machine the front door runs on (the webhook's results wait in the stream for
// it, however long the receiver is down while it runs: a consumer being pulled from is never
// inactive), and a week of a busy installation's events (a few hundred MB a day) fits the
// stream's default 8 GiB. A front door that comes back later starts from what the stream
// still holds.
var ConsumerInactiveThreshold = 7 * 24 * time.Hour

// Service is the front door.
type Service struct {
	Bus      events.Publisher
	Log      *slog.Logger
	Registry []registry.Option // reading the wished images' manifests (is it reachable?)
	// Token is the bearer token every request but /healthz and /openapi.json must carry.
	Token []byte
	// Filter is the --webhook-wishlist: which pushed images become wishes, and with what
	// repository and output format; nil ignores every webhook's images.
	Filter  *wishlist.Filter
	Metrics *Metrics

	rec      *records
	reg      *registry.Client
	mu       sync.Mutex
	changedC chan struct{} // closed and replaced when a state changes (status page)
}

// Open opens (creating) the front door's buckets on js.
func (s *Service) Open(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if len(s.Token) == 0 {
		return errors.New("the front door needs a bearer token (--token-file)")
	}
	rec, err := openRecords(ctx, js, replicas)
	if err != nil {
		return err
	}
	s.rec = rec
	// A registry that refuses the connection answers the reachability check: nothing listens
	// there now, and a wish is not held for the registry timeout waiting for it.
	s.reg = registry.NewClient(append(slices.Clone(s.Registry), registry.WithFinal(registry.Refused))...)
	s.changedC = make(chan struct{})
	return nil
}

// Register opens the buckets and adds the front door's consumer, which follows the images'
// states, to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if err := s.Open(ctx, b.JetStream(), b.Replicas()); err != nil {
		return err
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: StateTypes, MaxAttempts: stateMaxAttempts, InactiveThreshold: ConsumerInactiveThreshold}, s.HandleState)
}

// Serve answers HTTP on ln until ctx ends.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		for {
			if _, err := s.publishUnpublished(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn("publishing the wishes whose publish had failed; trying again later", "in", PublishEvery, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(PublishEvery):
			}
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("front door on %s: %w", ln.Addr(), err)
	}
	return nil
}

// changed wakes whoever waits for a state change (the status page's live updates).
func (s *Service) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changedC != nil {
		close(s.changedC)
	}
	s.changedC = make(chan struct{})
}

// changes is closed at the next state change.
func (s *Service) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedC
}
