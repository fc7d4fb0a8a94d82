package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"flatbed.dev/events"
	"flatbed.dev/pkg/dumbremote"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/relocate"
	"flatbed.dev/services/exporter"
	"flatbed.dev/services/notifier"
	"flatbed.dev/services/resolver"
)

// exportStages are the stages a wish for the exported output passes.
var exportStages = []string{resolver.Name, exporter.Name, notifier.Name}

const remoteHelp = `REMOTE is a registry-less remote holding an OCI image layout, as dogestry kept images:
  dir:///PATH                                     a directory (made when missing)
  s3://BUCKET[/PREFIX][?region=R&endpoint=URL]    an S3 bucket; endpoint for an S3-compatible
                                                  server, e.g. http://127.0.0.1:9000
  http(s)://HOST[:PORT][/PATH]                    read-only, for import: a remote a web server
                                                  serves (a directory behind nginx, a public
                                                  bucket's URL); name images by name or full
                                                  digest there (an id prefix needs a listing)
S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
(anonymous without them), never from REMOTE, which is logged and carried in events.

On the remote, blobs/sha256/<hex> holds each blob once, written whole (a temporary name and a
rename, or tmp/ and a server-side copy on S3) and checked against its digest before its
sidecar blobs/sha256/<hex>.sha256 marks it present; refs/<registry>/<repository>/<tag> and
ids/<xx>/<hex> are small files naming images, so a name or an id prefix resolves without
listing the remote. Concurrent exporters to one remote write the same bytes under the same
names and never corrupt it; one killed half-way leaves at most unfinished blobs that the next
export completes.`

// exportOpts are the flags of export.
type exportOpts struct {
	compress      string
	timeout       time.Duration
	waitForStages bool
}

func newExport(g *globals) *cobra.Command {
	o := &exportOpts{}
	cmd := &cobra.Command{
		Use:   "export REMOTE REF...",
		Short: "Keep images on a registry-less remote, a directory or an S3 bucket (dogestry push)",
		Long: `Write each image to REMOTE: every blob the remote does not have yet, then its manifest (an
index whole, every platform), then its reference. A second image sharing a base transfers only
its own blobs. 'flatbed import' reads them back, into a registry or a docker/podman load archive.

Each REF is a wish for the exported output, resolved and written by the resolver and exporter
stages (in this process over an embedded NATS server without --nats; by the 'flatbed serve'
processes with --nats), and this command waits for the results as convert does. An image is
written as docker writes it (redis:7 is docker.io/library/redis:7) or with a scheme
(http://localhost:5000/app:1 for a plain-http registry).

--compress zstd keeps gzip and uncompressed layers recompressed with zstd on the remote (smaller,
faster to unpack); an import then gives a valid image with the same config (image id) but
another manifest digest. Without it every blob is kept byte for byte and an import gives every
digest back.

` + remoteHelp + `

Exit status:
  0    every image exported
  1    an image failed (not found, the remote refused it, …) or the run did
  2    the command line is wrong (a remote or an image that is not one)
  101  the registry credentials set-up is incomplete
  130  interrupted by SIGINT before every image had a result (143: by SIGTERM)`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			jobs, labels, err := o.jobs(args[0], args[1:])
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if err := registry.CheckEnv(); err != nil {
				return &exitError{exitNoPassword, err}
			}
			return exportThroughPipeline(cmd.Context(), g, o, jobs, labels, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.compress, "compress", "none", "how layers are kept on the remote: none (byte for byte) or zstd (recompressed)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Hour, "give up waiting for the pipeline's results after this long")
	f.BoolVar(&o.waitForStages, "wait-for-stages", false, "with --nats: submit the wishes even when a stage has no worker yet, and wait for it")
	return cmd
}

// jobs makes one wish for the exported output per image, refusing a remote or an image that
// is not one before anything is published.
func (o *exportOpts) jobs(remoteArg string, refs []string) ([]events.Job, []string, error) {
	loc, err := dumbremote.ParseLocation(remoteArg)
	if err != nil {
		return nil, nil, err
	}
	if loc.ReadOnly() {
		return nil, nil, fmt.Errorf("%s is read-only (served over HTTP): export to its dir:// or s3:// form", loc)
	}
	compress, err := dumbremote.ParseCompression(o.compress)
	if err != nil {
		return nil, nil, fmt.Errorf("--compress: %w", err)
	}
	var jobs []events.Job
	var labels []string
	seen := map[string]bool{}
	for _, s := range refs {
		ref, err := relocate.ParseImage(s)
		if err != nil {
			return nil, nil, err
		}
		if ref.Tag == "" && ref.Digest == "" {
			ref.Tag = imageref.DefaultTag
		}
		if seen[ref.String()] {
			continue
		}
		seen[ref.String()] = true
		job := events.Job{Image: ref.String(), Outputs: []string{events.OutputExported}, ExportRemote: loc.String(), ExportCompress: string(compress)}
		jobs = append(jobs, job)
		labels = append(labels, s)
	}
	return jobs, labels, nil
}

// exportThroughPipeline publishes the wishes and reports each result.
func exportThroughPipeline(ctx context.Context, g *globals, o *exportOpts, jobs []events.Job, labels []string, out io.Writer) error {
	w := &wishRun{command: "export", stages: exportStages, waitForStages: o.waitForStages, timeout: o.timeout, jobs: jobs, labels: labels}
	g.log.Info("exporting", "images", len(jobs), "remote", jobs[0].ExportRemote)
	var failures []error
	exported := 0
	err := w.run(ctx, g, func(l string, r result) {
		if r.completed != nil {
			exported++
			fmt.Fprintf(out, "%-10s %s -> %s\n", "exported", l, r.completed.Exported)
			return
		}
		failures = append(failures, fmt.Errorf("%s: %s", l, r.failed.Error))
	})
	if err != nil {
		return err
	}
	for _, f := range failures {
		fmt.Fprintf(out, "%-10s %s\n", "FAILED", f)
	}
	if len(failures) > 0 {
		return &exitError{exitSomeFailed, fmt.Errorf("not everything was exported: %d failure(s), %d image(s) exported", len(failures), exported)}
	}
	return nil
}

// importOpts are the flags of import.
type importOpts struct {
	to        string
	toArchive string
}

func newImport(g *globals) *cobra.Command {
	o := &importOpts{}
	cmd := &cobra.Command{
		Use:   "import REMOTE REF... (--to PREFIX | --to-archive FILE)",
		Short: "Read images back from a registry-less remote into a registry or a docker/podman load archive (dogestry pull)",
		Long: `Read each image REF names on REMOTE (written by 'flatbed export') and write it:
  --to PREFIX         to the registry under PREFIX (REGISTRY[:PORT][/PATH], http://… for a
                      plain-http registry), as PREFIX/<original repository path>:<tag>; the
                      registry is asked for each blob first and only the missing ones are
                      uploaded; every digest is kept (unless exported with --compress zstd)
  --to-archive FILE   to one tarball that 'docker load -i FILE' and 'podman load -i FILE' read,
                      each image under its original name; of an index, the image for this
                      machine's platform

REF is an image name as it was exported (redis:7, registry.example/team/app:1, or
…@sha256:<digest>) or an image id or a prefix of one (a config, manifest or index digest, at
least 6 hex digits, with or without sha256:). This command runs in this process alone, without
the pipeline or NATS.

` + remoteHelp + `

Exit status:
  0    every image imported
  1    an image failed (not on the remote, incomplete there, the registry refused it, …)
  2    the command line is wrong`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (o.to == "") == (o.toArchive == "") {
				return &exitError{exitUsage, errors.New("say where the images go: --to PREFIX (a registry) or --to-archive FILE (docker/podman load), one of them")}
			}
			var prefix relocate.Prefix
			if o.to != "" {
				var err error
				if prefix, err = relocate.ParsePrefix(o.to); err != nil {
					return &exitError{exitUsage, fmt.Errorf("--to: %w", err)}
				}
			}
			if _, err := dumbremote.ParseLocation(args[0]); err != nil {
				return &exitError{exitUsage, err}
			}
			return importImages(cmd.Context(), g, args[0], args[1:], prefix, o.toArchive, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "", "write the images to this registry prefix: REGISTRY[:PORT][/PATH]")
	cmd.Flags().StringVar(&o.toArchive, "to-archive", "", "write the images to this docker/podman load archive")
	return cmd
}

// importImages reads every REF from the remote and writes it to the prefix's registry, or
// all of them to one archive. It goes on after an image fails and reports each failure.
func importImages(ctx context.Context, g *globals, remoteArg string, refs []string, prefix relocate.Prefix, archive string, out io.Writer) error {
	r, err := dumbremote.Open(ctx, remoteArg)
	if err != nil {
		return &exitError{exitSomeFailed, err}
	}
	reg, err := g.registryOptions()
	if err != nil {
		return err
	}
	var failures []error
	images := map[name.Tag]v1.Image{}
	for _, s := range refs {
		res, art, err := r.Import(ctx, s)
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", s, err))
			continue
		}
		if archive != "" {
			tag, img, err := archived(res, art)
			if err != nil {
				failures = append(failures, fmt.Errorf("%s: %w", s, err))
				continue
			}
			images[tag] = img
			continue
		}
		target, digest, err := pushImported(ctx, reg, prefix, res, art)
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", s, err))
			continue
		}
		fmt.Fprintf(out, "%-10s %s -> %s@%s\n", "imported", s, target, digest)
	}
	if archive != "" && len(images) > 0 {
		if err := dumbremote.WriteArchive(archive, images); err != nil {
			return &exitError{exitSomeFailed, fmt.Errorf("writing the archive %s: %w", archive, err)}
		}
		for t, img := range images {
			id, _ := img.ConfigName()
			fmt.Fprintf(out, "%-10s %s -> %s (image id %s)\n", "archived", t, archive, id)
		}
	}
	for _, f := range failures {
		fmt.Fprintf(out, "%-10s %s\n", "FAILED", f)
	}
	if len(failures) > 0 {
		return &exitError{exitSomeFailed, fmt.Errorf("not everything was imported: %d failure(s)", len(failures))}
	}
	return nil
}

// pushImported writes one image or index under the prefix: its original repository path, its
// tag (or, without one, its digest).
func pushImported(ctx context.Context, reg []registry.Option, prefix relocate.Prefix, res dumbremote.Resolved, art remote.Taggable) (string, v1.Hash, error) {
	dst, err := prefix.Nested(res.Name)
	if err != nil {
		return "", v1.Hash{}, err
	}
	want, err := art.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		return "", v1.Hash{}, err
	}
	dst.Digest = ""
	if dst.Tag == "" {
		dst.Digest = want.String()
	}
	ref, err := dst.GGCR()
	if err != nil {
		return "", v1.Hash{}, err
	}
	ctx = registry.ContextWithScheme(ctx, dst.Scheme, dst.Registry)
	var got v1.Hash
	err = registry.Do(ctx, reg, func(ro []remote.Option) error {
		got, err = dumbremote.PushTo(ref, art, append(ro, remote.WithContext(ctx))...)
		return err
	})
	if err != nil {
		return "", v1.Hash{}, registry.Explain(err)
	}
	return dst.Registry + "/" + dst.Repository + dst.Reference(), got, nil
}

// archived is the image of art that goes into an archive, under its original name.
func archived(res dumbremote.Resolved, art remote.Taggable) (name.Tag, v1.Image, error) {
	img, err := dumbremote.Platform(art)
	if err != nil {
		return name.Tag{}, nil, err
	}
	tag := res.Name.Tag
	if tag == "" {
		tag = imageref.DefaultTag
	}
	t, err := name.NewTag(res.Name.Registry+"/"+res.Name.Repository+":"+tag, name.WeakValidation)
	return t, img, err
}

func newVerifyRemote(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify-remote REMOTE",
		Short: "Check a registry-less remote: every blob against its name and checksum, every reference for a complete image",
		Long: `Read every blob on REMOTE and check that its content hashes to its name and that its sidecar
checksum says so, and that every reference (refs/ and ids/) names an image or index whose
blobs are all there. Blobs without a sidecar were being written when an exporter stopped (a
kill, a crash): they are listed as unfinished, not as problems, and the next export of their
image completes them.

` + remoteHelp + `

Exit status: 0 when nothing is wrong, 1 when something is (each problem is printed), 2 when
the command line is wrong.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := dumbremote.ParseLocation(args[0])
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if loc.ReadOnly() {
				return &exitError{exitUsage, fmt.Errorf("%s is served over HTTP, which cannot list it: verify it at its dir:// or s3:// form", loc)}
			}
			r, err := dumbremote.Open(cmd.Context(), args[0])
			if err != nil {
				return &exitError{exitSomeFailed, err}
			}
			rep, err := r.Verify(cmd.Context())
			out := cmd.OutOrStdout()
			for _, u := range rep.Unfinished {
				fmt.Fprintf(out, "%-10s %s\n", "unfinished", u)
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(out, "%-10s %s\n", "PROBLEM", p)
			}
			fmt.Fprintf(out, "%d blob(s) checked, %d unfinished, %d reference(s) to complete images, %d temporary upload(s) of stopped writers, %d problem(s)\n",
				rep.Blobs, len(rep.Unfinished), rep.References, rep.Temporary, len(rep.Problems))
			switch {
			case err != nil && len(rep.Problems) == 0: // the remote could not be read
				return &exitError{exitSomeFailed, err}
			case err != nil:
				return &exitError{exitSomeFailed, fmt.Errorf("%s is damaged: %d problem(s)", r, len(rep.Problems))}
			}
			return nil
		},
	}
}
