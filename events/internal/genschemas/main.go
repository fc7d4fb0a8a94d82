// Command genschemas writes schemas/<type>.json for every event type (run by go generate).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"flatbed.dev/events"
	"flatbed.dev/events/schema"
)

func main() {
	dir := "schemas"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for t := range events.Types() {
		b, err := schema.Generate(t)
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
