// Package thinpusher is the fourth stage: it pushes the DUCC thin image (a single layer
// holding thin.json that points into the store) to the wished output name.
package thinpusher
