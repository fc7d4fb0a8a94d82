// Package resolver is the first stage: it turns a wish into a resolved image (manifest,
// config, layers) and asks the ingesters for its layers, unless the store already has it.
package resolver
