// Command genschemas writes schemas/<type>.json for every event type (run by go generate).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"flatbed.dev/events"
)

func main() {
	dir := "schemas"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for t := range events.Types() {
		b, err := events.GenerateSchema(t)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(dir, t+".json"), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
