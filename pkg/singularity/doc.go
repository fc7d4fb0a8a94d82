// Package singularity writes the files that make a flat root file system usable as a
// Singularity/Apptainer sandbox (.singularity.d, the action scripts and their symlinks).
package singularity
