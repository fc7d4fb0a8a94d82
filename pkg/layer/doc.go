// Package layer unpacks one image layer blob into a layerfs directory, safely and verified,
// in the form the store keeps it (overlayfs whiteouts when possible, OCI .wh. files otherwise).
package layer
