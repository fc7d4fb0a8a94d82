package dumbremote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Backend keeps the keys as objects below a prefix of a bucket. An object appears whole
// or not at all, so a PUT needs no temporary name.
type s3Backend struct {
	client *minio.Client
	bucket string
	prefix string // "" or "path/" inside the bucket

	mu      sync.Mutex
	tmpKept bool // tmpMarker was written by this process
}

// tmpMarker is a small object that stays in tmp/ for good. S3-compatible servers that keep
// objects as files (s3rver) remove a directory a delete leaves empty; when one writer's
// temporary was deleted just as another writer's upload into tmp/ was about to open its file,
// that upload failed, and s3rver 3.7 died of it. With the marker tmp/ is never empty. Sweeps
// and verify pass it over.
const tmpMarker = "tmp/.keep"

// keepTmp writes tmpMarker once per process, before the first temporary.
func (s *s3Backend) keepTmp(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tmpKept {
		return nil
	}
	const note = "flatbed keeps this object so that tmp/ is never empty\n" // not empty: some servers refuse a PUT without a length
	if _, err := s.client.PutObject(ctx, s.bucket, s.prefix+tmpMarker, strings.NewReader(note), int64(len(note)), minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
		return s.explain(tmpMarker, err)
	}
	s.tmpKept = true
	return nil
}

// partSize bounds what a multipart upload of a large blob holds in memory at once.
const partSize = 16 << 20

// newS3 connects to the bucket of loc. Credentials come from AWS_ACCESS_KEY_ID (or
// AWS_ACCESS_KEY), AWS_SECRET_ACCESS_KEY (or AWS_SECRET_KEY) and AWS_SESSION_TOKEN; without
// them requests are anonymous (a public bucket).
func newS3(loc Location, transport http.RoundTripper) (*s3Backend, error) {
	host, secure := "s3.amazonaws.com", true
	if loc.Region != "" {
		host = "s3." + loc.Region + ".amazonaws.com"
	}
	lookup := minio.BucketLookupAuto
	if loc.Endpoint != "" {
		e, err := url.Parse(loc.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("endpoint of %s: %w", loc, err)
		}
		host, secure = e.Host, e.Scheme == "https"
		lookup = minio.BucketLookupPath // S3-compatible servers rarely have per-bucket host names
	}
	var creds *credentials.Credentials
	if os.Getenv("AWS_ACCESS_KEY_ID") != "" || os.Getenv("AWS_ACCESS_KEY") != "" {
		creds = credentials.NewEnvAWS()
	} else {
		creds = credentials.NewStaticV4("", "", "") // anonymous
	}
	c, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: loc.Region, BucketLookup: lookup, Transport: transport})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", loc, err)
	}
	prefix := loc.Path
	if prefix != "" {
		prefix += "/"
	}
	return &s3Backend{client: c, bucket: loc.Bucket, prefix: prefix}, nil
}

func (s *s3Backend) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if missing(err) {
		return false, nil
	}
	return false, s.explain(key, err)
}

func (s *s3Backend) get(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.explain(key, err)
	}
	// GetObject asks nothing until the first read: stat now, so a missing key is told at once.
	if _, err := o.Stat(); err != nil {
		o.Close()
		if missing(err) {
			return nil, fmt.Errorf("%s: %w", key, errNotFound)
		}
		return nil, s.explain(key, err)
	}
	return o, nil
}

// put writes a blob (r checks its content as it streams) to tmp/ first and has the server
// copy it into place once it was read whole and checked: S3 makes a PUT appear whole or not at
// all, but some S3-compatible servers (s3rver) keep what an aborted PUT sent. Small keys we
// make ourselves (sidecars, references) are written with one PUT.
func (s *s3Backend) put(ctx context.Context, key string, r io.Reader, size int64) error {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: partSize, DisableContentSha256: true}
	if _, blob := r.(*checked); !blob {
		if _, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, r, size, opts); err != nil {
			return s.explain(key, err)
		}
		return nil
	}
	if err := s.keepTmp(ctx); err != nil {
		return err
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	tmp := s.prefix + "tmp/" + hex.EncodeToString(rnd[:])
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, tmp, minio.RemoveObjectOptions{}) //nolint:errcheck // best effort: tmp/ holds nothing anyone reads
	info, err := s.client.PutObject(ctx, s.bucket, tmp, r, size, opts)
	if err != nil {
		return s.explain(key, err)
	}
	if c, ok := r.(*checked); ok && c.bad != nil {
		return c.bad
	}
	dst := minio.CopyDestOptions{Bucket: s.bucket, Object: s.prefix + key}
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: tmp}
	if info.Size > maxCopy {
		_, err = s.client.ComposeObject(ctx, dst, src)
	} else {
		_, err = s.client.CopyObject(ctx, dst, src)
	}
	if err != nil {
		return s.explain(key, err)
	}
	return nil
}

// maxCopy is the largest object S3 copies in one request; larger ones are copied in parts.
const maxCopy = 5 << 30

func (s *s3Backend) list(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s.explain(prefix, o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, s.prefix))
	}
	return keys, nil
}

func (s *s3Backend) remove(ctx context.Context, key string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil && !missing(err) {
		return s.explain(key, err)
	}
	return nil
}

func missing(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == minio.NoSuchKey || code == "NotFound" || minio.ToErrorResponse(err).StatusCode == http.StatusNotFound && code != minio.NoSuchBucket
}

// explain names the object and says what to do about the errors a user can mend.
func (s *s3Backend) explain(key string, err error) error {
	where := "s3://" + s.bucket + "/" + s.prefix + key
	switch resp := minio.ToErrorResponse(err); resp.Code {
	case minio.NoSuchBucket:
		return &PermanentError{fmt.Errorf("%s: the bucket %s does not exist; create it first: %w", where, s.bucket, err)}
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return &PermanentError{fmt.Errorf("%s: the S3 server refused the credentials; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN: %w", where, err)}
	}
	return fmt.Errorf("%s: %w", where, err)
}

// sweep removes the objects in tmp/ older than age: uploads of writers that were killed
// before they copied them into place (a live writer's upload is younger than any sane age).
func (s *s3Backend) sweep(ctx context.Context, age time.Duration) (int, error) {
	n := 0
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "tmp/", Recursive: true}) {
		if o.Err != nil {
			return n, s.explain("tmp/", o.Err)
		}
		if o.Key == s.prefix+tmpMarker || time.Since(o.LastModified) < age {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.bucket, o.Key, minio.RemoveObjectOptions{}); err != nil && !missing(err) {
			return n, s.explain(strings.TrimPrefix(o.Key, s.prefix), err)
		}
		n++
	}
	return n, nil
}
