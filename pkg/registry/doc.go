// Package registry configures go-containerregistry for flatbed: credentials (DUCC environment variables, docker config), retries and transport.
package registry
