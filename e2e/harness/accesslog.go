package harness

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// syncParam is the query parameter of the harness' own marker requests,
// which Requests leaves out.
const syncParam = "flatbed-harness-sync"

// Request is one line of the registry's access log.
type Request struct {
	Method string // GET, HEAD, PUT, ...
	URI    string // path and query, e.g. /v2/demo/hello/blobs/sha256:…
	Status int
}

func (q Request) String() string { return q.Method + " " + q.URI + " " + strconv.Itoa(q.Status) }

// accessLine matches the Apache combined log format that distribution v2.8
// writes to stdout (gorilla/handlers.CombinedLoggingHandler):
//
//	127.0.0.1 - - [25/Nov/2026:11:46:41 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
var accessLine = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) HTTP/[0-9.]+" (\d{3}) `)

// blobPath matches /v2/<name>/blobs/<digest> (not uploads).
var blobPath = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)

func parseAccessLog(b []byte) []Request {
	var out []Request
	for _, line := range strings.Split(string(b), "\n") {
		m := accessLine.FindStringSubmatch(line)
		if m == nil || strings.Contains(m[2], syncParam+"=") {
			continue
		}
		st, _ := strconv.Atoi(m[3])
		out = append(out, Request{Method: m[1], URI: m[2], Status: st})
	}
	return out
}

// RequestLog returns every request the registry has logged so far (the
// harness' own marker requests left out). It fails the test if the log
// cannot be read.
func (r *Registry) RequestLog(t testing.TB) []Request {
	t.Helper()
	b, err := r.sync()
	if err != nil {
		t.Fatalf("registry access log: %v", err)
	}
	return parseAccessLog(b)
}

// Requests returns every logged request as "METHOD URI STATUS", e.g.
// "GET /v2/corpus/basic/blobs/sha256:… 200". It returns nil if the access
// log cannot be read.
func (r *Registry) Requests() []string {
	b, err := r.sync()
	if err != nil {
		return nil
	}
	var out []string
	for _, q := range parseAccessLog(b) {
		out = append(out, q.String())
	}
	return out
}

// BlobGETs counts GET /v2/<name>/blobs/sha256:<hex> requests (layers and
// configs, any status; HEAD requests and uploads are not counted).
func (r *Registry) BlobGETs() int { return r.BlobGETsOf() }

// BlobGETsOf counts GET requests of the given blob digests ("sha256:<hex>"),
// in any repository; with no digests, of every blob.
func (r *Registry) BlobGETsOf(digests ...string) int {
	b, err := r.sync()
	if err != nil {
		return -1
	}
	want := map[string]bool{}
	for _, d := range digests {
		want[d] = true
	}
	n := 0
	for _, q := range parseAccessLog(b) {
		if q.Method != "GET" {
			continue
		}
		m := blobPath.FindStringSubmatch(q.URI)
		if m != nil && (len(want) == 0 || want[m[2]]) {
			n++
		}
	}
	return n
}
