// Package thin builds and pushes DUCC thin images: one-layer Docker images whose thin.json points at the unpacked layers in CernVM-FS.
package thin
