// Package e2e runs the real flatbed binary against the real distribution registry, real
// NATS and reference clients (umoci, skopeo); see harness for the shared set-up.
package e2e
