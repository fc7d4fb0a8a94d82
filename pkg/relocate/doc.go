// Package relocate copies images to a repository prefix under the names duffle and
// pivotal/image-relocation give them, keeping every digest, and records where each went.
package relocate
