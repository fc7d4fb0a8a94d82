// Package store knows the DUCC-compatible layout of a flatbed repository on disk
// (.layers, .flat, .metadata, public symlinks) and how to publish into it atomically.
package store
