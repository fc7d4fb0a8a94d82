// Package ingester is the second stage: it unpacks one layer into the store's .layers,
// verified and atomically, or notices it is already there.
package ingester
