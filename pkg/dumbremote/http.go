package dumbremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpBackend reads a remote a web server serves (a directory remote behind any HTTP server,
// a public bucket's URL): keys are GET and HEAD below base. It cannot write or list, so
// images are named by name or full digest there, not by an id prefix.
type httpBackend struct {
	base   string // scheme://host[:port]/path/
	client *http.Client
}

func newHTTP(loc Location, transport http.RoundTripper) httpBackend {
	base := loc.Endpoint + "/"
	if loc.Path != "" {
		base += loc.Path + "/"
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	return httpBackend{base: base, client: &http.Client{Transport: transport}}
}

var errReadOnly = errors.New("a remote served over HTTP is read-only")

func (h httpBackend) do(ctx context.Context, method, key string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.base+key, nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, h.base+key, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %w", key, errNotFound)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		resp.Body.Close()
		return nil, &PermanentError{fmt.Errorf("%s %s: %s: the server refuses anonymous reads", method, h.base+key, resp.Status)}
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s", method, h.base+key, resp.Status)
	}
	return resp, nil
}

func (h httpBackend) exists(ctx context.Context, key string) (bool, error) {
	resp, err := h.do(ctx, http.MethodHead, key)
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

func (h httpBackend) get(ctx context.Context, key string) (io.ReadCloser, error) {
	resp, err := h.do(ctx, http.MethodGet, key)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (h httpBackend) put(context.Context, string, io.Reader, int64) error { return errReadOnly }
func (h httpBackend) remove(context.Context, string) error                { return errReadOnly }
func (h httpBackend) sweep(context.Context, time.Duration) (int, error)   { return 0, nil }

func (h httpBackend) list(context.Context, string) ([]string, error) {
	return nil, &PermanentError{errors.New("a remote served over HTTP cannot be listed: name images by name or full digest, not by an id prefix, and verify the remote at its dir:// or s3:// form")}
}
