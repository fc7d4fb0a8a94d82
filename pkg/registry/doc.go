// Package registry configures go-containerregistry for flatbed: credentials (DUCC environment
// variables, docker config), the transport, and the one policy for registry faults.
//
// # Where registry faults are retried
//
// Temporary registry faults are retried in this package and nowhere else, on one budget per
// operation (resolving an image, fetching one layer, pushing one thin image):
//
//   - retryTransport retries a request after a connection refused or reset, a registry that
//     stalled (sent nothing for the stall timeout) or a busy answer (408, 429, 5xx, waiting
//     at least what Retry-After asks), with DefaultBackoff: 1, 2, 4, 8, 16, then every 30 s;
//   - Do runs the whole operation again after a temporary fault no request could retry: a
//     body cut short, stalled or not matching its digest, an upload whose body cannot be
//     replayed, a manifest that changed while it was read (Transient);
//   - both stop when the registry timeout (WithTimeout, --registry-timeout, DefaultTimeout 10
//     min) has passed since the operation's first fault. The operation then fails with its
//     last fault, the number of tries and the bound that ran out, and that error is Final.
//
// go-containerregistry's own retries (its transport's and its uploads') are switched off, so
// tries never multiply; the bus's redelivery (events/bus) is left for what is not the
// registry's: a crashed or stopped process, a full disk, a lost NATS connection. A service
// fails a wish at once (events.Permanent) on a Final error: an answer no new try can change
// (404, 401, 403, other 4xx), a name the DNS says does not exist, a TLS certificate that is
// not trusted, a registry that does not speak TLS, or a spent budget.
//
// With the defaults a registry that restarts is found again at most 30 s after it is back; one
// that refuses connections or stops answering for good fails each operation 10 minutes after
// its first fault (plus at most one stall timeout for the request under way), not after 5
// deliveries of 6 tries of 2 minutes; and Reason says which of these it was.
//
// # What is kept between operations
//
// Alone, go-containerregistry pings the registry (GET /v2/) and exchanges the credentials for
// a token in every operation. A Client, one per service, keeps both for the life of the
// process: each registry is pinged once and each repository's pull token fetched once (and
// renewed when the registry asks); a refusal of the credentials makes it forget them. The
// retry budget is not kept: each operation has its own, which its requests find in their
// context.
package registry
