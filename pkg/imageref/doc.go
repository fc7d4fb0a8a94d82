// Package imageref parses and formats DUCC image references, [SCHEME://]REGISTRY/REPOSITORY[:TAG][@DIGEST].
package imageref
