package dumbremote

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Location is a parsed remote: dir:///path, s3://bucket/prefix?region=…&endpoint=…, or
// http(s)://host/path to read one a web server serves.
type Location struct {
	Scheme string // "dir" or "s3"
	// Path is the directory (dir) or the key prefix inside the bucket without a leading or
	// trailing '/' (s3).
	Path     string
	Bucket   string // s3
	Region   string // s3: ?region=
	Endpoint string // s3: ?endpoint=, e.g. http://127.0.0.1:9000 or https://s3.example.com ("" for AWS); http(s): scheme://host[:port]
}

// ErrLocation marks a remote that is not one.
var ErrLocation = errors.New("not a remote")

// credentialParams are query parameters that carry credentials (a pre-signed URL's): they
// would be logged and carried in events, so a remote with them is refused.
var credentialParams = []string{"x-amz-credential", "x-amz-signature", "x-amz-security-token", "awsaccesskeyid", "signature",
	"access_key", "secret_key", "access-key", "secret-key", "token", "password"}

// ParseLocation reads a remote. It refuses credentials in it (user information or a signed
// URL's parameters): they come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, never from the remote, which is logged and carried in events.
func ParseLocation(s string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("%w: %q: %s", ErrLocation, Redact(s), why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("write it as dir:///PATH or s3://BUCKET[/PREFIX][?region=R&endpoint=URL]")
	}
	if u.User != nil {
		return bad("credentials in the remote are not supported (they would be logged): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	q := u.Query()
	for k := range q {
		if lk := strings.ToLower(k); lk != "region" && lk != "endpoint" {
			for _, c := range credentialParams {
				if lk == c {
					return bad("credentials in the remote are not supported (they would be logged): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
				}
			}
			return bad(fmt.Sprintf("unknown parameter %q (s3 remotes take region and endpoint)", k))
		}
	}
	switch u.Scheme {
	case "dir":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return bad("a directory remote is dir:///ABSOLUTE/PATH (three slashes)")
		}
		if len(q) > 0 || u.Fragment != "" {
			return bad("a directory remote takes no parameters")
		}
		return Location{Scheme: "dir", Path: path.Clean(u.Path)}, nil
	case "s3":
		if u.Host == "" {
			return bad("an S3 remote names its bucket: s3://BUCKET[/PREFIX]")
		}
		loc := Location{Scheme: "s3", Bucket: u.Host, Path: strings.Trim(path.Clean("/"+u.Path), "/"), Region: q.Get("region"), Endpoint: q.Get("endpoint")}
		if loc.Path == "." {
			loc.Path = ""
		}
		if loc.Endpoint != "" {
			e, err := url.Parse(loc.Endpoint)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || (e.Path != "" && e.Path != "/") || e.User != nil {
				return bad("endpoint must be http://HOST[:PORT] or https://HOST[:PORT]")
			}
		}
		return loc, nil
	case "http", "https":
		if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return bad("a remote served over HTTP is http(s)://HOST[:PORT][/PATH], without parameters")
		}
		loc := Location{Scheme: u.Scheme, Endpoint: u.Scheme + "://" + u.Host, Path: strings.Trim(path.Clean("/"+u.Path), "/")}
		if loc.Path == "." {
			loc.Path = ""
		}
		return loc, nil
	}
	return bad("the scheme must be dir://, s3:// or, to read only, http(s)://")
}

// ReadOnly reports whether the remote can only be read: one served over HTTP by a web server
// (a directory remote behind nginx, a public bucket's URL).
func (l Location) ReadOnly() bool { return l.Scheme == "http" || l.Scheme == "https" }

// String writes the location back as a remote.
func (l Location) String() string {
	switch {
	case l.Scheme == "dir":
		return "dir://" + l.Path
	case l.ReadOnly() && l.Path == "":
		return l.Endpoint
	case l.ReadOnly():
		return l.Endpoint + "/" + l.Path
	}
	s := "s3://" + l.Bucket
	if l.Path != "" {
		s += "/" + l.Path
	}
	q := url.Values{}
	if l.Region != "" {
		q.Set("region", l.Region)
	}
	if l.Endpoint != "" {
		q.Set("endpoint", l.Endpoint)
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// Redact hides the user information and the query of a remote that may carry credentials, so
// that a refused remote can be named in an error.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexAny(s, "?@"); i >= 0 {
			return s[:i] + "…"
		}
		return s
	}
	if u.User != nil {
		u.User = url.User("***")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if lk := strings.ToLower(k); lk != "region" && lk != "endpoint" {
				q.Set(k, "***")
			}
		}
		u.RawQuery = q.Encode()
	}
	return strings.Replace(u.String(), "%2A%2A%2A@", "***@", 1)
}
