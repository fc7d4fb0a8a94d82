package bus

// Replicas is how many replicas the bus gives its streams and buckets (Options.Replicas, or
// what it chose for the server), for services that create buckets of their own.
func (b *Bus) Replicas() int { return b.replicas }
