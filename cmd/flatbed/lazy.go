package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lazy"
	"flatbed.dev/pkg/registry"
	lazystage "flatbed.dev/services/lazy"
	"flatbed.dev/services/notifier"
	"flatbed.dev/services/resolver"
)

// lazyStages are the stages a wish for the lazy output passes.
var lazyStages = []string{resolver.Name, lazystage.Name, notifier.Name}

// lazyOpts are the flags of lazy, named as overlaybd's standalone convertor names them.
type lazyOpts struct {
	repository, inputTag, outputTag string
	format                          string
	referrer, oci                   bool
	noUpload, dumpManifest          bool
	plain                           bool
	user                            string
	concurrency                     int
	prioritized                     string
	dir                             string
	dbType, dbStr                   string
	timeout                         time.Duration
	waitForStages                   bool
}

const lazyHelp = `Convert an image to a lazy-pull format, so that containers start before the whole image is
downloaded: eStargz (containerd's stargz-snapshotter; each layer a gzip stream with a table of
contents, prioritised files first) or zstd:chunked (podman and CRI-O, containers/storage).
REPOSITORY:INPUT_TAG is converted and pushed as REPOSITORY:OUTPUT_TAG, every platform of a
multi-arch index (at most --concurrency-limit at once).

A converted layer is never converted twice: the lazy stage records each one by chain ID and
format in JetStream KV, shared by every replica, and reuses it when the target repository
still holds the blob (mounting it from another repository of the registry); a blob deleted
since is converted again. An image converted before is only tagged.

The wish goes through the pipeline (resolver, lazy, notifier: in this process over an
embedded NATS server without --nats; by the 'flatbed serve' processes with --nats) and this
command waits for its result. --no-upload converts in this process alone and pushes nothing
(with --dump-manifest, the converted manifest is printed).

Certificates are flatbed's global registry options: --insecure, --root-ca FILE, and
--cert-dir DIR as the convertor and docker take it (DIR/*.crt root CAs, DIR/NAME.cert with
DIR/NAME.key a client certificate for registries that ask for one, DIR/<host:port>/ the
same for that registry alone), or --client-cert FILE --client-key FILE. They apply to the
stages in this process; with --nats, give them to the 'flatbed serve' processes (keys never
travel in events).

overlaybd's own block format needs overlaybd's C++ tools, which flatbed does not run; the
formats are pluggable (pkg/lazy Register), so a converter calling them can be added.

Exit status:
  0    converted and pushed (or, with --no-upload, converted)
  1    the conversion failed (the image was not found, the registry refused it, …)
  2    the command line is wrong
  101  the registry credentials set-up is incomplete
  130  interrupted by SIGINT (143: by SIGTERM)`

func newLazy(g *globals) *cobra.Command {
	o := &lazyOpts{}
	cmd := &cobra.Command{
		Use:   "lazy -r REPOSITORY -i INPUT_TAG [-o OUTPUT_TAG] [--format estargz|zstd-chunked] [--referrer] [--oci] [--no-upload] [--dump-manifest]",
		Short: "Convert an image to eStargz or zstd:chunked (overlaybd convertor's vocabulary)",
		Long:  lazyHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			job, label, err := o.job()
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if err := registry.CheckEnv(); err != nil {
				return &exitError{exitNoPassword, err}
			}
			if o.user != "" {
				if g.natsURL != "" {
					return &exitError{exitUsage, errors.New("-u works when the stages run in this process (without --nats): credentials never travel in events; give the 'flatbed serve' processes DUCC_AUTH_REGISTRIES or a docker login")}
				}
				user, pass, _ := strings.Cut(o.user, ":")
				ref, _ := imageref.Parse(job.Image)
				g.registryAuth = append(g.registryAuth, registry.WithBasicAuth(ref.Registry, user, pass))
			}
			g.lazyConcurrency, g.lazyTempDir = o.concurrency, o.dir
			if o.dir != "" {
				// The estargz library's parallel build (big layers, prioritised files) spools
				// its parts to the system's temporary directory, which no option sets: -d is
				// that directory in this process.
				if err := os.Setenv("TMPDIR", o.dir); err != nil {
					return fmt.Errorf("-d %s: %w", o.dir, err)
				}
			}
			if o.dbType != "" || o.dbStr != "" {
				if g.natsURL != "" {
					return &exitError{exitUsage, errors.New("--db-type and --db-str choose the dedup store of the lazy stage in this process (without --nats); give the 'flatbed serve' processes " + lazyDBTypeEnv + " and " + lazyDBStrEnv)}
				}
				g.lazyDBType, g.lazyDBStr = o.dbType, o.dbStr
			}
			if o.noUpload {
				return lazyHere(cmd.Context(), g, o, job, cmd.OutOrStdout())
			}
			return lazyThroughPipeline(cmd.Context(), g, o, job, label, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.repository, "repository", "r", "", "repository of the image, REGISTRY[:PORT]/PATH (required)")
	f.StringVarP(&o.inputTag, "input-tag", "i", "", "tag of the image to convert (required)")
	f.StringVarP(&o.outputTag, "output-tag", "o", "", "tag of the converted image (default INPUT_TAG-FORMAT)")
	f.StringVar(&o.format, "format", lazy.Estargz, "lazy-pull format: "+strings.Join(lazy.Formats(), " or "))
	f.BoolVar(&o.referrer, "referrer", false, "push the converted manifests with a subject naming the original (OCI referrers API, or its sha256-<hex> tag where the registry lacks it); implies --oci")
	f.BoolVar(&o.oci, "oci", false, "write OCI media types (zstd:chunked always does)")
	f.BoolVar(&o.noUpload, "no-upload", false, "convert in this process and push nothing")
	f.BoolVar(&o.dumpManifest, "dump-manifest", false, "with --no-upload: print the converted manifest (or index)")
	f.BoolVar(&o.plain, "plain", false, "reach the registry over plain HTTP")
	f.StringVarP(&o.user, "username", "u", "", "USER[:PASSWORD] for the registry (stages in this process only)")
	f.IntVar(&o.concurrency, "concurrency-limit", lazy.DefaultConcurrency, "platforms of a multi-arch image converted at once, and layers over all of them")
	f.StringVar(&o.prioritized, "prioritized-files", "", "file listing the paths eStargz puts first, one a line (e.g. what the container reads at start)")
	f.StringVarP(&o.dir, "dir", "d", "", "directory for the temporary blobs, the estargz library's too (default: the system's)")
	f.StringVar(&o.dbType, "db-type", "", "dedup store of converted layers and images: kv (JetStream KV, the default), mysql (MySQL or MariaDB, overlaybd's tables) or none")
	f.StringVar(&o.dbStr, "db-str", "", "with --db-type mysql: the database, user:pass@tcp(host:port)/dbname")
	f.DurationVar(&o.timeout, "timeout", 2*time.Hour, "give up waiting for the pipeline's result after this long")
	f.BoolVar(&o.waitForStages, "wait-for-stages", false, "with --nats: submit the wish even when a stage has no worker yet, and wait for it")
	_ = cmd.MarkFlagRequired("repository")
	_ = cmd.MarkFlagRequired("input-tag")
	return cmd
}

// job is the wish of the command line, checked, and the image as the user named it.
func (o *lazyOpts) job() (events.Job, string, error) {
	if _, err := lazy.New(o.format, lazy.Options{}); err != nil {
		return events.Job{}, "", fmt.Errorf("--format: %w", err)
	}
	if o.concurrency < 0 {
		return events.Job{}, "", errors.New("--concurrency-limit: want 0 (no limit but the default) or more")
	}
	if o.dumpManifest && !o.noUpload {
		return events.Job{}, "", errors.New("--dump-manifest goes with --no-upload: the pushed manifest is in the registry")
	}
	scheme := "https"
	if o.plain {
		scheme = "http"
	}
	if strings.Contains(o.repository, "://") {
		return events.Job{}, "", fmt.Errorf("-r %q: give REGISTRY[:PORT]/PATH without a scheme (--plain for http)", o.repository)
	}
	out := o.outputTag
	if out == "" {
		out = o.inputTag + "-" + o.format
	}
	src, err := imageref.Parse(scheme + "://" + o.repository + ":" + o.inputTag)
	if err != nil {
		return events.Job{}, "", fmt.Errorf("-r/-i: %w", err)
	}
	dst, err := imageref.Parse(scheme + "://" + o.repository + ":" + out)
	if err != nil {
		return events.Job{}, "", fmt.Errorf("-o: %w", err)
	}
	if src.Wildcard() || dst.Wildcard() {
		return events.Job{}, "", errors.New("-i and -o name one tag each, without '*'")
	}
	job := events.Job{Image: src.String(), Outputs: []string{events.OutputLazy}, LazyImage: dst.String(), LazyFormat: o.format,
		LazyOCI: o.oci, LazyReferrer: o.referrer}
	if o.prioritized != "" {
		if job.LazyPrioritized, err = readLines(o.prioritized); err != nil {
			return events.Job{}, "", fmt.Errorf("--prioritized-files: %w", err)
		}
	}
	return job, o.repository + ":" + o.inputTag, nil
}

// readLines reads the non-empty lines of a file, without a leading "/" or "./".
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "./"), "/")
		if l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// lazyThroughPipeline publishes the wish for the lazy output and waits for its result.
func lazyThroughPipeline(ctx context.Context, g *globals, o *lazyOpts, job events.Job, label string, out io.Writer) error {
	w := &wishRun{command: "lazy", stages: lazyStages, waitForStages: o.waitForStages, timeout: o.timeout, jobs: []events.Job{job}, labels: []string{label}}
	g.log.Info("converting", "image", label, "format", o.format, "target", job.LazyImage)
	var failed error
	err := w.run(ctx, g, func(l string, r result) {
		if r.completed != nil {
			fmt.Fprintf(out, "%-10s %s -> %s\n", "converted", l, r.completed.Lazy)
			return
		}
		failed = fmt.Errorf("%s: %s", l, r.failed.Error)
	})
	if err != nil {
		return err
	}
	if failed != nil {
		fmt.Fprintf(out, "%-10s %s\n", "FAILED", failed)
		return &exitError{exitSomeFailed, failed}
	}
	return nil
}

// lazyHere converts in this process with pkg/lazy alone, pushing nothing.
func lazyHere(ctx context.Context, g *globals, o *lazyOpts, job events.Job, out io.Writer) error {
	src, _ := imageref.Parse(job.Image)
	dst, _ := imageref.Parse(job.LazyImage)
	srcRef, err := src.GGCR()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	dstRef, err := dst.GGCR()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	conv, err := lazy.New(job.LazyFormat, lazy.Options{PrioritizedFiles: job.LazyPrioritized})
	if err != nil {
		return &exitError{exitUsage, err}
	}
	ctx = registry.ContextWithScheme(ctx, src.Scheme, src.Registry)
	reg, err := g.registryOptions()
	if err != nil {
		return err
	}
	reg = append(reg, g.registryAuth...)
	var res *lazy.Result
	err = registry.Do(ctx, reg, func(ro []remote.Option) error {
		res, err = lazy.Convert(ctx, lazy.Request{Source: srcRef, Target: dstRef, Format: job.LazyFormat, Converter: conv, OCI: job.LazyOCI,
			Referrer: job.LazyReferrer, NoUpload: true, Concurrency: o.concurrency, TempDir: o.dir, Remote: ro, Log: g.log})
		return err
	})
	if err != nil {
		return &exitError{exitSomeFailed, fmt.Errorf("converting %s: %w", src, registry.Explain(err))}
	}
	if o.dumpManifest {
		fmt.Fprintf(out, "%s\n", res.Manifest)
		for _, p := range res.Platforms {
			fmt.Fprintf(out, "%s\n", p.Manifest)
		}
		return nil
	}
	fmt.Fprintf(out, "%-10s %s -> %s@%s (not pushed: --no-upload; %d layers, %d bytes)\n", "converted", o.repository+":"+o.inputTag, dstRef, res.Digest, res.Layers, res.Bytes)
	return nil
}

// The environment of a 'flatbed serve' process that chooses its lazy stage's dedup store, as
// lazy's --db-type and --db-str do (a flag would put the password in the process list).
const (
	lazyDBTypeEnv = "FLATBED_LAZY_DB_TYPE"
	lazyDBStrEnv  = "FLATBED_LAZY_DB_STR"
)

// lazyDedup is the dedup store the lazy stage of this process uses: nil for JetStream KV (the
// stage opens it), overlaybd's MySQL tables, or none.
func lazyDedup(ctx context.Context, g *globals) (lazy.Dedup, error) {
	typ, dsn := g.lazyDBType, g.lazyDBStr
	if typ == "" && dsn == "" {
		typ, dsn = os.Getenv(lazyDBTypeEnv), os.Getenv(lazyDBStrEnv)
	}
	switch typ {
	case "", "kv":
		if dsn != "" {
			return nil, &exitError{exitUsage, errors.New("a dedup database (--db-str) needs --db-type mysql")}
		}
		return nil, nil
	case "none":
		return lazystage.None{}, nil
	case "mysql":
		if dsn == "" {
			return nil, &exitError{exitUsage, errors.New("--db-type mysql needs --db-str user:pass@tcp(host:port)/dbname")}
		}
		db, err := lazystage.OpenSQL(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	return nil, &exitError{exitUsage, fmt.Errorf("--db-type %q: choose kv, mysql or none", typ)}
}
