// Package harness starts real tools (docker-registry, skopeo, umoci) for end-to-end tests and reads back what they saw and produced.
package harness
