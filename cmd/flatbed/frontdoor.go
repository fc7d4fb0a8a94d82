package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/wishlist"
	"flatbed.dev/services/frontdoor"
)

// frontdoorFlags are serve's settings of the front door.
type frontdoorFlags struct {
	addr       string
	tokenFile  string
	wishlist   string
	notifyURL  string
	notifyMode string
}

// front holds serve's front-door flags (serve is the one command that runs the front door).
var front frontdoorFlags

func addFrontdoorFlags(f *pflag.FlagSet) {
	f.StringVar(&front.addr, "http-addr", frontdoor.DefaultAddr, "address of the front door's HTTP API, webhooks and status page (loopback by default)")
	f.StringVar(&front.tokenFile, "token-file", "", "file holding the front door's bearer token, made with a random one when missing (default <state-dir>/frontdoor.token)")
	f.StringVar(&front.notifyURL, "notify-url", "", "post every conversion result (conversion.completed, conversion.failed) to this URL as a CloudEvent, retried with back-off until taken (a durable consumer: receiver outages and restarts lose nothing)")
	f.StringVar(&front.notifyMode, "notify-mode", "structured", "CloudEvents HTTP mode of --notify-url: structured (application/cloudevents+json) or binary (ce- headers)")
	f.StringVar(&front.wishlist, "webhook-wishlist", "", "DUCC wishlist whose inputs (globs allowed) say which pushed images registry webhooks turn into wishes, with its cvmfs_repo and output_format")
}

// serveServices are the services serve runs by default: the pipeline and its front door.
var serveServices = append(append([]string(nil), allServices...), frontdoor.Name)

// registerFrontdoor starts the front door's HTTP server (failing at once when its address is
// taken) and adds its consumer to b.
func registerFrontdoor(ctx context.Context, g *globals, b *bus.Bus, log *slog.Logger) error {
	token, path, err := frontdoorToken(front.tokenFile, g.stateDir)
	if err != nil {
		return err
	}
	reg, err := g.registryOptions()
	if err != nil {
		return err
	}
	s := &frontdoor.Service{Bus: b, Log: log, Token: token, Registry: reg, Metrics: frontdoor.NewMetrics(prometheus.DefaultRegisterer)}
	if front.wishlist != "" {
		f, err := wishlist.LoadFilter(front.wishlist)
		if err != nil {
			return &exitError{exitUsage, fmt.Errorf("--webhook-wishlist: %w", err)}
		}
		s.Filter = f
	}
	if front.notifyMode != "structured" && front.notifyMode != "binary" {
		return &exitError{exitUsage, fmt.Errorf("--notify-mode %q: choose structured or binary", front.notifyMode)}
	}
	if err := s.Register(ctx, b); err != nil {
		return err
	}
	if front.notifyURL != "" {
		if err := frontdoor.CheckNotifyURL(front.notifyURL); err != nil {
			return &exitError{exitUsage, err}
		}
		n := &frontdoor.Notifier{URL: front.notifyURL, Binary: front.notifyMode == "binary", Log: log}
		if err := n.Register(ctx, b); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", front.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--http-addr %s: the address is in use: stop what listens there or choose another address (127.0.0.1:0 takes any free port)", front.addr)
		}
		return fmt.Errorf("--http-addr %s: %w", front.addr, err)
	}
	log.Info("front door listening", "url", "http://"+ln.Addr().String(), "token_file", path, "webhook_wishlist", front.wishlist)
	go func() {
		if err := s.Serve(ctx, ln); err != nil {
			log.Error("front door stopped", "err", err)
		}
	}()
	return nil
}

// frontdoorToken reads the bearer token from file (default <stateDir>/frontdoor.token); a file
// that does not exist is made, readable by its owner only, with a random token. The token
// itself is never logged.
func frontdoorToken(file, stateDir string) ([]byte, string, error) {
	if file == "" {
		file = filepath.Join(stateDir, "frontdoor.token")
	}
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, "", fmt.Errorf("--token-file %s: %w", file, err)
		}
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.WriteString(base64.RawURLEncoding.EncodeToString(raw) + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, "", fmt.Errorf("--token-file %s: making a token: %w", file, err)
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if len(tok) < 16 {
		return nil, "", fmt.Errorf("--token-file %s: the token is %d characters; use at least 16 (e.g. head -c 32 /dev/urandom | base64 > %s)", file, len(tok), file)
	}
	return []byte(tok), file, nil
}
