package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/services/frontdoor"
)

// frontdoorClient talks to the front door's HTTP API, as `flatbed wish` and `flatbed status`.
type frontdoorClient struct {
	base      string
	token     string
	tokenFile string
	http      *http.Client
}

// frontdoorFlagsOf adds --url and --token-file to cmd and returns the client they make.
func frontdoorFlagsOf(g *globals, cmd *cobra.Command) func() (*frontdoorClient, error) {
	var base, tokenFile string
	cmd.PersistentFlags().StringVar(&base, "url", "", "the front door's URL (default $FLATBED_URL, else http://"+frontdoor.DefaultAddr+")")
	cmd.PersistentFlags().StringVar(&tokenFile, "token-file", "", "file holding the front door's bearer token (default $FLATBED_TOKEN_FILE, else <state-dir>/frontdoor.token)")
	return func() (*frontdoorClient, error) {
		if base == "" {
			base = os.Getenv("FLATBED_URL")
		}
		if base == "" {
			base = "http://" + frontdoor.DefaultAddr
		}
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, &exitError{exitUsage, fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT", base)}
		}
		if tokenFile == "" {
			tokenFile = os.Getenv("FLATBED_TOKEN_FILE")
		}
		if tokenFile == "" {
			tokenFile = filepath.Join(g.stateDir, "frontdoor.token")
		}
		raw, err := os.ReadFile(tokenFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no front door token at %s: a front door writes it there when it first starts ('flatbed serve' or 'flatbed serve frontdoor' with the same --state-dir); give another with --token-file or FLATBED_TOKEN_FILE", tokenFile)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the front door's token: %w (give the file 'flatbed serve frontdoor' uses with --token-file or FLATBED_TOKEN_FILE)", err)
		}
		return &frontdoorClient{base: strings.TrimRight(base, "/"), token: strings.TrimSpace(string(raw)), tokenFile: tokenFile,
			http: &http.Client{Timeout: 2 * time.Minute}}, nil
	}
}

// do sends a request with the token and decodes a JSON answer into out; an answer that is
// not 2xx is an error carrying the front door's message.
func (c *frontdoorClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is 'flatbed serve' running with the frontdoor? give its address with --url)", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, c.base+path, err)
	}
	if resp.StatusCode/100 != 2 {
		var p frontdoor.Problem
		if json.Unmarshal(raw, &p) == nil && p.Error != "" {
			if resp.StatusCode == http.StatusUnauthorized {
				return fmt.Errorf("the front door refused the token of %s: %s", c.tokenFile, p.Error)
			}
			return fmt.Errorf("%s", p.Error)
		}
		return fmt.Errorf("%s %s: %s", method, c.base+path, resp.Status)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("reading the answer of %s %s: %w", method, c.base+path, err)
		}
	}
	return nil
}

func newWish(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wish",
		Short: "Add, list and withdraw the wishes the front door keeps",
		Long: `Talk to the front door ('flatbed serve frontdoor') over its HTTP API: its wishes are kept in
JetStream KV, and each image the pipeline sees has a state (pending, running, done, failed).
--url (or FLATBED_URL) names the front door, --token-file (or FLATBED_TOKEN_FILE) its bearer token.`,
	}
	client := frontdoorFlagsOf(g, cmd)
	var outputFormat, thinImage, user string
	var skipThin, asJSON bool
	var opts frontdoor.WishOptions
	add := &cobra.Command{
		Use:   "add IMAGE [CVMFS_REPO]",
		Short: "Wish IMAGE converted into CVMFS_REPO, or to the --output it names (checked: both names parse, not wished already, the manifest is reachable)",
		Long: `Wish IMAGE converted into CVMFS_REPO (the unpacked store and the thin image), or to the outputs
--output names: unpacked, thin, relocated (--relocate-prefix), lazy (--lazy-image) and exported
(--export-remote), as flatbed relocate, lazy and export make them. CVMFS_REPO is needed only for
the unpacked output. The front door keeps the wish with all of it: every later submission of it
(a registry webhook's push of a new digest) asks for the same.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var w frontdoor.WishView
			repo := ""
			if len(args) == 2 {
				repo = args[1]
			}
			req := frontdoor.WishRequest{Image: args[0], CvmfsRepo: repo, OutputFormat: outputFormat, ThinImage: thinImage, SkipThin: skipThin, User: user, WishOptions: opts}
			if err := c.do(cmd.Context(), "POST", "/api/v1/wishes", req, &w); err != nil {
				return err
			}
			to := w.CvmfsRepo
			if len(w.Outputs) > 0 {
				to = strings.Join(w.Outputs, ", ")
				if w.CvmfsRepo != "" {
					to += " (" + w.CvmfsRepo + ")"
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wished %s %s -> %s\n", w.ID, imageref.Redact(w.Image), to)
			return nil
		},
	}
	add.Flags().StringVar(&outputFormat, "output-format", "", "the thin image's name, as a wishlist's output_format (default DUCC's)")
	add.Flags().StringVar(&thinImage, "thin-image", "", "the thin image's name, written out")
	add.Flags().BoolVarP(&skipThin, "skip-thin-image", "i", false, "push no thin image")
	add.Flags().StringVar(&user, "user", "", "the registry login for the thin image (a wishlist's user)")
	f := add.Flags()
	f.BoolVarP(&opts.MultiArch, "multi-arch", "m", false, "convert every linux platform of a multi-arch image, each under .multiarch/ (default: the host's platform only)")
	f.BoolVarP(&opts.ConvertAgain, "convert-again", "g", false, "convert even when the store holds the image already")
	f.BoolVarP(&opts.SkipPodman, "skip-podman", "p", false, "do not list the image in the podman store")
	f.StringSliceVar(&opts.Outputs, "output", nil, "an output to make: unpacked, thin, relocated, lazy, exported (repeatable or comma-separated; default unpacked and thin)")
	f.StringVar(&opts.RelocatePrefix, "relocate-prefix", "", "relocated: copy the image under this repository prefix, REGISTRY[:PORT][/PATH]")
	f.BoolVar(&opts.RelocateNoFlatten, "relocate-no-flatten", false, "relocated: keep the repository hierarchy under the prefix")
	f.StringVar(&opts.LazyImage, "lazy-image", "", "lazy: where the converted image goes, [scheme://]REGISTRY/REPOSITORY[:TAG]")
	f.StringVar(&opts.LazyFormat, "lazy-format", "", "lazy: estargz (the default) or zstd-chunked")
	f.BoolVar(&opts.LazyOCI, "lazy-oci", false, "lazy: write OCI media types")
	f.BoolVar(&opts.LazyReferrer, "lazy-referrer", false, "lazy: push the converted manifests with a subject naming the original")
	f.StringArrayVar(&opts.LazyPrioritized, "lazy-prioritized", nil, "lazy: a path eStargz puts first (repeatable)")
	f.StringVar(&opts.ExportRemote, "export-remote", "", "exported: the registry-less remote, dir:///PATH or s3://BUCKET[/PREFIX][?region=R&endpoint=URL]")
	f.StringVar(&opts.ExportCompress, "export-compress", "", "exported: zstd keeps layers recompressed on the remote")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the wishes with their images' states",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var wl frontdoor.WishList
			if err := c.do(cmd.Context(), "GET", "/api/v1/wishes", nil, &wl); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), wl)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tIMAGE\tCVMFS_REPO\tSOURCE\tERROR")
			for _, w := range wl.Wishes {
				state, reason := "pending", ""
				if w.State != nil {
					state, reason = w.State.State, w.State.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, state, imageref.Redact(w.Image), w.CvmfsRepo, w.Source, oneLine(reason))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")

	var repo string
	rm := &cobra.Command{
		Use:   "rm ID|IMAGE...",
		Short: "Withdraw wishes, by id or by image (with --cvmfs-repo); what was converted stays in the store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var failed []string
			for _, a := range args {
				id := a
				if len(a) != 24 || strings.ContainsAny(a, "/:") {
					ref, err := imageref.Parse(a)
					if err != nil {
						return &exitError{exitUsage, fmt.Errorf("%q is neither a wish id nor an image: %w", a, err)}
					}
					if repo == "" {
						return &exitError{exitUsage, fmt.Errorf("%s: give the repository it was wished into with --cvmfs-repo (or the wish id)", a)}
					}
					id = frontdoor.Key(repo, ref.String())
				}
				if err := c.do(cmd.Context(), "DELETE", "/api/v1/wishes/"+url.PathEscape(id), nil, nil); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", a, err)
					failed = append(failed, a)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "withdrawn %s\n", a)
			}
			if len(failed) > 0 {
				return &exitError{exitSomeFailed, fmt.Errorf("%d of %d wishes not withdrawn", len(failed), len(args))}
			}
			return nil
		},
	}
	rm.Flags().StringVar(&repo, "cvmfs-repo", "", "the repository the images given by name were wished into")
	cmd.AddCommand(add, ls, rm)
	return cmd
}

func newStatus(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [ID]",
		Short: "The state of every image the pipeline has seen, or one image's history (from the front door)",
		Long: `Without ID: every image the pipeline has seen (wished through the front door, flatbed convert or
the bus), with its state (pending, running, done, failed) and last error. With an image (or wish)
id: its states, oldest first, each with the event that set it.`,
		Args: cobra.MaximumNArgs(1),
	}
	client := frontdoorFlagsOf(g, cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := client()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		if len(args) == 1 {
			var h frontdoor.History
			if err := c.do(cmd.Context(), "GET", "/api/v1/images/"+url.PathEscape(args[0])+"/history", nil, &h); err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, h)
			}
			fmt.Fprintln(tw, "TIME\tEVENT\tSTATE\tWISH\tERROR")
			for _, s := range h.States {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Event.Time.Format(time.RFC3339), s.Event.Type, s.State, s.WishID, oneLine(s.Error))
			}
			return tw.Flush()
		}
		var l frontdoor.ImageList
		if err := c.do(cmd.Context(), "GET", "/api/v1/images", nil, &l); err != nil {
			return err
		}
		if asJSON {
			return printJSON(out, l)
		}
		fmt.Fprintln(tw, "ID\tSTATE\tIMAGE\tCVMFS_REPO\tOUTPUTS\tUPDATED\tERROR")
		for _, i := range l.Images {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.ID, i.State, imageref.Redact(i.Image), i.CvmfsRepo, outputsColumn(i.Outputs),
				i.UpdatedAt.Format(time.RFC3339), oneLine(i.Error))
		}
		return tw.Flush()
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}

// outputsColumn is an image's outputs in a table cell: name:state each, e.g.
// "unpacked:done lazy:pending".
func outputsColumn(outs []frontdoor.Output) string {
	if len(outs) == 0 {
		return "-"
	}
	cells := make([]string, len(outs))
	for i, o := range outs {
		cells[i] = o.Name + ":" + o.State
	}
	return strings.Join(cells, " ")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
