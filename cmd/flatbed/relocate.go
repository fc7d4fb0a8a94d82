package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/spf13/cobra"

	"flatbed.dev/events"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/relocate"
	"flatbed.dev/pkg/store"
)

// relocateOpts are the flags of relocate.
type relocateOpts struct {
	prefix        string
	noFlatten     bool
	mapping       string
	bundle        string
	outputBundle  string
	fromLayout    string
	timeout       time.Duration
	waitForStages bool

	rewrite    []string // YAML files to copy with the relocated images (--rewrite)
	rewriteDir string   // where the copies go (--rewrite-dir)

	namer relocate.Namer // from prefix and noFlatten
}

const relocateHelp = `Copy images under a repository prefix with the names duffle and pivotal/image-relocation give
them: PREFIX/<repository path with '/' turned into '-'>-<md5 of the original name>, tag and
digest kept (--no-flatten keeps the original path below PREFIX instead). Every manifest, index
and blob is copied byte for byte, an index (a multi-arch image) whole, and the digests are read
back from the target: an image whose digest changed fails the run, named.

REF... go through the pipeline: each is a wish for the relocated output, resolved and copied
by the resolver and relocator stages (in this process over an embedded NATS server without
--nats; by the 'flatbed serve' processes with --nats), and this command waits for their
results as convert does.

--bundle and --from-layout run in this process alone, without the pipeline or NATS:
  --bundle B --output-bundle O  relocates the images and invocation images of the CNAB
                                bundle.json B and writes it rewritten as duffle does
                                (image, originalImage, contentDigest) to O
  --from-layout DIR             reads the images from the OCI image layout DIR (a thick
                                bundle) instead of their registries, offline; with no REF
                                and no --bundle, every image the layout names is relocated

PREFIX is REGISTRY[:PORT][/PATH] (http://REGISTRY… for a plain-http registry). An image is
written as docker writes it (istio/proxyv2:1.2 is docker.io/istio/proxyv2:1.2) or with a
scheme (http://localhost:5000/app:1). --mapping FILE gets a JSON object: each image as written
to its relocated reference with the digest copied, for the images that were relocated.
--rewrite FILE (repeatable) writes a copy of each YAML file (Kubernetes manifests, Helm values,
several documents each) to --rewrite-dir DIR with every image the relocation mapped replaced
by its relocated reference, pinned to its digest: image: nginx:1.25 becomes
image: PREFIX/library-nginx-<md5>:1.25@sha256:…, however the file writes the name
(docker.io/library/nginx:1.25 too); comments, quoting and everything else stay as they were.

Exit status:
  0    every image relocated with its digests
  1    an image failed (its digest changed at the target, it was not found, …) or the run did
  2    the command line is wrong (unknown flag, bad flag value, an image or prefix that is not one)
  101  the registry credentials set-up is incomplete (DUCC_<R>_USER without DUCC_<R>_PASS, …)
  130  interrupted by SIGINT before every image had a result (143: by SIGTERM)`

func newRelocate(g *globals) *cobra.Command {
	o := &relocateOpts{}
	cmd := &cobra.Command{
		Use:   "relocate --repository-prefix PREFIX [--no-flatten] [--mapping FILE] [--bundle B --output-bundle O] [--from-layout DIR] [REF...]",
		Short: "Copy images under a repository prefix, every digest kept (duffle relocate)",
		Long:  relocateHelp,
		RunE: func(cmd *cobra.Command, refs []string) error {
			if err := o.check(refs); err != nil {
				return &exitError{exitUsage, err}
			}
			if err := registry.CheckEnv(); err != nil {
				return &exitError{exitNoPassword, err}
			}
			if o.bundle != "" || o.fromLayout != "" {
				return relocateHere(cmd.Context(), g, o, refs, cmd.OutOrStdout())
			}
			return relocateThroughPipeline(cmd.Context(), g, o, refs, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.prefix, "repository-prefix", "", "where the images go: REGISTRY[:PORT][/PATH] (required)")
	f.BoolVar(&o.noFlatten, "no-flatten", false, "keep each image's repository path below the prefix instead of duffle's flat name")
	f.StringVar(&o.mapping, "mapping", "", "write the mapping, original image -> relocated reference with digest, to this JSON file")
	f.StringArrayVar(&o.rewrite, "rewrite", nil, "copy this YAML file to --rewrite-dir with every relocated image replaced (repeatable)")
	f.StringVar(&o.rewriteDir, "rewrite-dir", "", "where --rewrite writes its copies (each under its own file name)")
	f.StringVar(&o.bundle, "bundle", "", "relocate the images of this CNAB bundle.json (in this process; needs --output-bundle)")
	f.StringVar(&o.outputBundle, "output-bundle", "", "write the relocated bundle.json here")
	f.StringVar(&o.fromLayout, "from-layout", "", "read the images from this OCI image layout instead of their registries (in this process, offline)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Hour, "give up waiting for the pipeline's results after this long")
	f.BoolVar(&o.waitForStages, "wait-for-stages", false, "with --nats: submit the wishes even when a stage has no worker yet, and wait for it")
	_ = cmd.MarkFlagRequired("repository-prefix")
	return cmd
}

// check refuses a command line that names nothing to relocate or mixes its inputs, and
// makes the namer of the prefix.
func (o *relocateOpts) check(refs []string) error {
	prefix, err := relocate.ParsePrefix(o.prefix)
	if err != nil {
		return fmt.Errorf("--repository-prefix: %w", err)
	}
	o.namer = prefix.Flat
	if o.noFlatten {
		o.namer = prefix.Nested
	}
	switch {
	case (o.bundle == "") != (o.outputBundle == ""):
		return errors.New("--bundle and --output-bundle go together: the relocated bundle is written to --output-bundle")
	case o.bundle != "" && len(refs) > 0:
		return errors.New("name the images with REF... or --bundle, not both")
	case (len(o.rewrite) > 0) != (o.rewriteDir != ""):
		return errors.New("--rewrite and --rewrite-dir go together: the copies of the --rewrite files are written to --rewrite-dir")
	case len(o.rewrite) > 0 && !distinctNames(o.rewrite):
		return errors.New("--rewrite: two files have the same name, and their copies would go to one file of --rewrite-dir")
	case o.bundle == "" && o.fromLayout == "" && len(refs) == 0:
		return errors.New("nothing to relocate: name images (REF...), a bundle (--bundle) or an OCI layout (--from-layout)")
	}
	return nil
}

// relocateHere relocates a bundle or from a layout in this process, with pkg/relocate alone.
func relocateHere(ctx context.Context, g *globals, o *relocateOpts, refs []string, out io.Writer) error {
	reg, rerr := g.registryOptions()
	if rerr != nil {
		return rerr
	}
	opts := []relocate.Option{relocate.WithRegistry(reg...)}
	if o.fromLayout != "" {
		opts = append(opts, relocate.FromLayout(layout.Path(o.fromLayout)))
		if o.bundle == "" && len(refs) == 0 {
			names, err := relocate.LayoutImages(layout.Path(o.fromLayout))
			if err != nil {
				return fmt.Errorf("reading the OCI layout %s: %w", o.fromLayout, err)
			}
			if len(names) == 0 {
				return fmt.Errorf("the OCI layout %s names no image in full (org.opencontainers.image.ref.name or io.containerd.image.name): name them with REF...", o.fromLayout)
			}
			refs = names
		}
	}
	var m relocate.Mapping
	var err error
	if o.bundle != "" {
		var in, rewritten []byte
		if in, err = os.ReadFile(o.bundle); err != nil {
			return fmt.Errorf("reading the bundle: %w", err)
		}
		rewritten, m, err = relocate.RelocateBundle(ctx, o.namer, in, opts...)
		if err == nil {
			if _, werr := store.WriteFileAtomic(o.outputBundle, rewritten, 0o644); werr != nil {
				err = fmt.Errorf("writing the relocated bundle: %w", werr)
			}
		}
	} else {
		if _, err := relocate.Plan(o.namer, refs); err != nil {
			return &exitError{exitUsage, err}
		}
		m, err = relocate.Relocate(ctx, o.namer, refs, opts...)
	}
	for _, orig := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(out, "%-10s %s -> %s\n", "relocated", orig, m[orig])
	}
	return finishRelocation(o, m, err, out)
}

// relocateThroughPipeline publishes one wish for the relocated output per image and waits
// for their results.
func relocateThroughPipeline(ctx context.Context, g *globals, o *relocateOpts, refs []string, out io.Writer) error {
	moves, err := relocate.Plan(o.namer, refs)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	w := &wishRun{command: "relocate", stages: relocateStages, waitForStages: o.waitForStages, timeout: o.timeout}
	for _, mv := range moves {
		w.jobs = append(w.jobs, events.Job{Image: mv.Source.String(), Outputs: []string{events.OutputRelocated}, RelocatePrefix: o.prefix, RelocateNoFlatten: o.noFlatten})
		w.labels = append(w.labels, mv.Original)
	}
	g.log.Info("relocating", "images", len(moves), "prefix", o.prefix)
	m := relocate.Mapping{}
	var failures []error
	err = w.run(ctx, g, func(orig string, r result) {
		if r.completed != nil {
			m[orig] = r.completed.Relocated
			fmt.Fprintf(out, "%-10s %s -> %s\n", "relocated", orig, r.completed.Relocated)
			return
		}
		failures = append(failures, fmt.Errorf("%s: %s", orig, r.failed.Error))
	})
	if err != nil {
		return err
	}
	return finishRelocation(o, m, errors.Join(failures...), out)
}

// finishRelocation writes the mapping of what was relocated and reports each image that was
// not, failing the run when there is one.
func finishRelocation(o *relocateOpts, m relocate.Mapping, err error, out io.Writer) error {
	if o.mapping != "" && len(m) > 0 {
		if werr := m.WriteFile(o.mapping); werr != nil {
			return werr
		}
	}
	if rerr := rewriteFiles(o, m, out); rerr != nil {
		return rerr
	}
	if err == nil {
		return nil
	}
	failures := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		failures = j.Unwrap()
	}
	for _, f := range failures {
		fmt.Fprintf(out, "%-10s %s\n", "FAILED", f)
	}
	return &exitError{exitSomeFailed, fmt.Errorf("not everything was relocated: %d failure(s), %d image(s) relocated", len(failures), len(m))}
}
