package registry

import "os"

// PasswordEnv lists the variables holding the password for the thin-image
// push, newest DUCC name first.
var PasswordEnv = []string{
	"DUCC_OUTPUT_REGISTRY_PASS",
	"DUCC_DOCKER_REGISTRY_PASS",
	"DOCKER2CVMFS_DOCKER_REGISTRY_PASS",
}

// PasswordFromEnv returns the first non-empty variable of PasswordEnv.
func PasswordFromEnv() (string, bool) {
	for _, name := range PasswordEnv {
		if v := os.Getenv(name); v != "" {
			return v, true
		}
	}
	return "", false
}
