// Package imagegen builds small, deterministic container images (a test corpus and friendly demos) as go-containerregistry v1.Image values and pushes them to a registry.
package imagegen
