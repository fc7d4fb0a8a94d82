package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lmittmann/tint"
	"github.com/spf13/cobra"

	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/services/resolver"
)

// globals are the flags every command shares.
type globals struct {
	storeRoot    string
	stateDir     string
	natsURL      string
	natsWait     time.Duration
	notification string
	verbose      bool
	jobs         int
	maxAttempts  int
	retryBase    time.Duration
	registryWait time.Duration
	registryTLS  registry.TLS // --insecure, --root-ca, --cert-dir, --client-cert, --client-key
	replicas     int
	streamMax    int64
	maxLayer     int64
	maxLayers    int
	flatFiles    string
	trustStore   bool                  // --trust-store: no tally walks in the resolver
	storeBackend []string              // --store-backend REPO=KIND
	backends     map[string]cvmfs.Kind // parsed (backend.go)
	// Set by lazy for the stages it runs in this process: -u's credentials,
	// --concurrency-limit and the temporary directory.
	registryAuth    []registry.Option
	lazyConcurrency int
	lazyTempDir     string
	lazyDBType      string // --db-type, --db-str
	lazyDBStr       string
	log             *slog.Logger
	// progress draws an interactive convert's bars (progress.go); nil otherwise.
	progress *progressView
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "flatbed",
		Short:         "Publish container images unpacked into a CernVM-FS style store",
		Long:          "flatbed converts container images into DUCC's unpacked layout (.layers, .flat, public symlinks, thin images)\nwith a pipeline of services (resolver, ingester, flattener, thinpusher, notifier; relocator, exporter and lazy for the other outputs; frontdoor for HTTP) talking over NATS JetStream.\n\n" + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if g.flatFiles != "link" && g.flatFiles != "copy" {
				return &exitError{exitUsage, fmt.Errorf("--flat-files %q: choose link or copy", g.flatFiles)}
			}
			g.log = newLogger(g.verbose)
			slog.SetDefault(g.log)
			if err := g.parseBackends(); err != nil {
				return err
			}
			if _, err := g.registryOptions(); err != nil { // a --root-ca, --cert-dir file or client key that cannot be read
				return err
			}
			if g.natsURL != "" && connectsToNATS[cmd.Name()] {
				return waitForNATS(cmd.Context(), g.log, g.natsURL, g.natsWait)
			}
			return nil
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.storeRoot, "store-root", defaultStoreRoot(), "directory holding one directory per CVMFS repository (e.g. /cvmfs)")
	f.StringVar(&g.stateDir, "state-dir", defaultStateDir(), "where the embedded NATS server keeps its JetStream state")
	f.StringVar(&g.natsURL, "nats", "", "NATS server URL; empty runs an embedded server")
	f.DurationVar(&g.natsWait, "nats-wait", defaultNATSWait, "how long to wait for the --nats server to answer, and for its JetStream cluster to be ready, before giving up")
	f.StringVarP(&g.notification, "notification-file", "n", "", "append DUCC JSON-lines notifications to this file")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "debug logging")
	f.IntVar(&g.jobs, "max-concurrent-downloads", 4, "layers fetched and unpacked at once by each ingester")
	f.IntVar(&g.maxAttempts, "max-attempts", 5, "deliveries of one step before it is declared failed")
	f.Int64Var(&g.maxLayer, "max-layer-bytes", layer.DefaultMaxUncompressedBytes, "uncompressed bytes one layer may unpack to (decompression bombs, sparse files)")
	f.IntVar(&g.maxLayers, "max-layers", resolver.DefaultMaxLayers, "refuse images with more layers than this")
	f.StringArrayVar(&g.storeBackend, "store-backend", nil, storeBackendHelp)
	f.BoolVar(&g.trustStore, "trust-store", false, "take an image the store holds for whole without walking its layers and flat tree (one lstat per file, once per run) against the tallies recorded when they were made: for stores too big to walk; a file removed or cut short inside a layer is then found by verify only")
	f.StringVar(&g.flatFiles, "flat-files", "link", "flat trees' files: link (hard links to the layers' files) or copy (copy_file_range, a reflink where the file system can)")
	f.IntVar(&g.replicas, "stream-replicas", 0, "replicas of the JetStream streams and lease bucket (0: 3 in a cluster, else 1)")
	f.Int64Var(&g.streamMax, "stream-max-bytes", 0, "limit of the pipeline stream (0: the embedded server's share of the --state-dir file system; with --nats, the stream's limit as it is, 8 GiB for a new one)")
	f.DurationVar(&g.retryBase, "retry-base", time.Second, "first redelivery delay after a failed step (doubles up to 30s)")
	f.BoolVar(&g.registryTLS.Insecure, "insecure", false, "don't verify registries' certificate chain and host name (every stage that talks to registries)")
	f.StringArrayVar(&g.registryTLS.RootCAs, "root-ca", nil, "PEM file of a CA trusted for registries' certificates besides the system's (repeatable)")
	f.StringArrayVar(&g.registryTLS.CertDirs, "cert-dir", nil, "directory in docker's certs.d layout: *.crt root CAs, NAME.cert with NAME.key client certificates (mutual TLS), for every registry; <host:port>/ subdirectories holding them for that registry alone (repeatable)")
	f.StringVar(&g.registryTLS.ClientCert, "client-cert", "", "PEM client certificate shown to registries that ask for one (mutual TLS), with --client-key")
	f.StringVar(&g.registryTLS.ClientKey, "client-key", "", "PEM key of --client-cert (never logged)")
	f.DurationVar(&g.registryWait, "registry-timeout", registry.DefaultTimeout, "how long a stage may retry an image's registry faults (refused, reset, stalled, busy), from the first, before the image fails")
	root.AddCommand(newRelocate(g))
	root.AddCommand(newLazy(g))
	root.AddCommand(newExport(g), newImport(g), newVerifyRemote(g))
	root.AddCommand(newWatch(g))
	root.AddCommand(newWish(g), newStatus(g))
	root.AddCommand(newConvert(g), newConvertSingle(g), newServe(g), newCheckImageSyntax(g), newDownloadManifest(g), newDemo(g), newVersion(),
		newDeleteImage(g), newGarbageCollection(g), newVerify(g), newCreatePodmanStore(g))
	root.AddCommand(newPruneImages(g))
	root.AddCommand(newExpandWildcard(g), newLoop(g))
	runtimeFailures(root)
	return root
}

// connectsToNATS are the commands that use --nats.
var connectsToNATS = map[string]bool{"serve": true, "convert": true, "convert-single-image": true, "demo": true, "loop": true}

func newLogger(debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return slog.New(tint.NewHandler(os.Stderr, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func dataHome() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share")
	}
	return os.TempDir()
}

func defaultStoreRoot() string { return filepath.Join(dataHome(), "flatbed", "store") }

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "flatbed")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "flatbed")
	}
	return filepath.Join(os.TempDir(), "flatbed-state")
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "flatbed", version) },
	}
}
