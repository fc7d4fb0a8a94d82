// Package podman writes a podman additional image store (containers/storage, overlay driver)
// next to the flat trees, so podman lists and runs converted images without pulling them.
package podman
