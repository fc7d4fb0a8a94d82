package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"flatbed.dev/events/client"
)

// defaultWatchURL is where `flatbed serve`'s embedded NATS server listens by default.
const defaultWatchURL = "nats://127.0.0.1:4222"

func newWatch(g *globals) *cobra.Command {
	var (
		types    []string
		image    string
		since    string
		execCmd  string
		maxCount int
	)
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow conversion results as they happen (or from a point in time)",
		Long: `Follow conversion results (conversion.completed, conversion.failed) of a running pipeline:
one JSON line per result on stdout, or, with --exec CMD, CMD run once per result with the
event's JSON on its standard input (sh -c CMD; a failing CMD is reported, and watching goes
on). --since starts from a point in time (RFC 3339, or a duration such as 10m for "that long
ago"), as far back as the stream still holds results; by default from now.
Without --nats it follows the embedded server of 'flatbed serve' (` + defaultWatchURL + `).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := client.Filter{}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return &exitError{exitUsage, err}
				}
				f.Since = t
			}
			want := map[string]bool{}
			for _, t := range types {
				switch t {
				case "completed", "conversion.completed":
					want["completed"] = true
				case "failed", "conversion.failed":
					want["failed"] = true
				default:
					return &exitError{exitUsage, fmt.Errorf("--type %q: choose completed or failed", t)}
				}
			}
			if image != "" {
				if _, err := path.Match(image, ""); err != nil {
					return &exitError{exitUsage, fmt.Errorf("--image %q: %w", image, err)}
				}
			}
			url := g.natsURL
			if url == "" {
				url = defaultWatchURL
			}
			nc, err := nats.Connect(url, nats.Name("flatbed/watch"), nats.MaxReconnects(-1))
			if err != nil {
				return fmt.Errorf("connecting to NATS at %s: %w (is 'flatbed serve' running? give --nats URL)", redactURLs(url), err)
			}
			defer nc.Close()
			c, err := client.New(nc, client.WithLogger(g.log))
			if err != nil {
				return err
			}
			results, err := c.Follow(cmd.Context(), f)
			if err != nil {
				return err
			}
			n := 0
			for r := range results {
				kind, data := "completed", any(r.Completed)
				if r.Failed != nil {
					kind, data = "failed", r.Failed
				}
				if len(want) > 0 && !want[kind] {
					continue
				}
				if image != "" && !matchImage(image, r) {
					continue
				}
				line, err := json.Marshal(map[string]any{"type": "conversion." + kind, "sequence": r.Sequence, "time": r.Time, "data": data})
				if err != nil {
					return err
				}
				if execCmd == "" {
					fmt.Println(string(line))
				} else if err := runFor(cmd.Context(), execCmd, line); err != nil {
					g.log.Error("--exec failed", "command", execCmd, "wish", r.Job().WishID, "err", err)
				}
				n++
				if maxCount > 0 && n >= maxCount {
					return nil
				}
			}
			return cmd.Context().Err()
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&types, "type", nil, "only these results: completed, failed (repeatable)")
	f.StringVar(&image, "image", "", "only images matching this glob (as wished, or registry/repository:tag)")
	f.StringVar(&since, "since", "", "start from this time (RFC 3339) or this long ago (e.g. 10m)")
	f.StringVar(&execCmd, "exec", "", "run this shell command once per result, the event's JSON on its standard input")
	f.IntVar(&maxCount, "count", 0, "stop after this many results (0: follow until interrupted)")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a time (RFC 3339, e.g. 2026-12-02T10:00:00Z) or a duration (e.g. 10m)", s)
	}
	return t, nil
}

func matchImage(glob string, r client.Result) bool {
	job := r.Job()
	for _, s := range []string{job.Image, imageName(r)} {
		if ok, _ := path.Match(glob, s); ok && s != "" {
			return true
		}
	}
	return false
}

func imageName(r client.Result) string {
	if r.Completed != nil {
		return r.Completed.Image.Name
	}
	return ""
}

// runFor runs sh -c command with data on its standard input.
func runFor(ctx context.Context, command string, data []byte) error {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	c.Stdin = bytes.NewReader(append(data, '\n'))
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	return c.Run()
}
