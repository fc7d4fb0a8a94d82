// Package flattener is the third stage and the join after the ingesters: once every layer of
// an image is in the store it builds the flat root file system, the public path and the
// stored manifest.
package flattener
