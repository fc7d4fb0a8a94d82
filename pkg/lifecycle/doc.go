// Package lifecycle removes what a store no longer needs: an image's names (delete), and the
// layers and flat trees no recorded image uses any more (garbage collection).
package lifecycle
