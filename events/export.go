package events

import (
	"fmt"
	"net/url"
	"strings"
)

// OutputExported is the exported output: the image kept on a registry-less remote
// (Job.ExportRemote, a directory or an S3 bucket holding an OCI image layout) by the exporter
// stage, which ends it with image.exported.
const OutputExported = "exported"

// ImageExportedType is the exporter's result.
const ImageExportedType = "image.exported"

// ImageExported says the image, as wished, is on the wish's remote: every blob, then its
// manifest or index, then its reference.
type ImageExported struct {
	Job   Job   `json:"job"`
	Image Image `json:"image"`
	// Reference is what the image is on the remote under, registry/repository[:tag]@digest,
	// with the digest of the manifest or index exported (an index whole, every platform):
	// `flatbed import REMOTE REFERENCE` reads it back.
	Reference string `json:"reference"`
	// BlobsUploaded were written now, BlobsPresent were on the remote already (not
	// transferred); BytesUploaded is what was written.
	BlobsUploaded int     `json:"blobs_uploaded"`
	BlobsPresent  int     `json:"blobs_present"`
	BytesUploaded int64   `json:"bytes_uploaded"`
	Seconds       float64 `json:"seconds"`
}

// Validate checks an exported image.
func (e *ImageExported) Validate() error {
	return all(e.Job.Validate, e.Image.Validate,
		func() error { return checkPinned("reference", e.Reference, true) },
		func() error {
			if e.BlobsUploaded < 0 || e.BlobsPresent < 0 {
				return fmt.Errorf("blobs_uploaded %d, blobs_present %d: negative", e.BlobsUploaded, e.BlobsPresent)
			}
			return nil
		},
		func() error {
			return checkNonNegative("bytes_uploaded and seconds", float64(e.BytesUploaded), e.Seconds)
		})
}

// maxRemoteBytes bounds Job.ExportRemote.
const maxRemoteBytes = 1024

// remoteParams are the only query parameters a remote takes (s3).
var remoteParams = map[string]bool{"region": true, "endpoint": true}

// checkExport checks the settings of the exported output: given only when it is asked for,
// and then a remote, dir:///PATH or s3://BUCKET[/PREFIX][?region=R&endpoint=URL], without
// credentials (they would be carried in every event and logged: the exporter takes them from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), and a compression it makes.
func (j Job) checkExport() error {
	if !j.Wants(OutputExported) {
		if j.ExportRemote != "" || j.ExportCompress != "" {
			return fmt.Errorf("job.export_*: given, but job.outputs does not ask for %s", OutputExported)
		}
		return nil
	}
	if j.ExportCompress != "" && j.ExportCompress != "zstd" {
		return fmt.Errorf("job.export_compress %q: want zstd or nothing", clip(j.ExportCompress))
	}
	return CheckRemote("job.export_remote", j.ExportRemote)
}

// CheckRemote checks a registry-less remote as text (package dumbremote parses it).
func CheckRemote(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: empty, but job.outputs asks for %s", field, OutputExported)
	}
	if err := checkText(field, s, maxRemoteBytes); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: not a remote (dir:///PATH or s3://BUCKET[/PREFIX]): %w", field, err)
	}
	if u.User != nil {
		return fmt.Errorf("%s: credentials in the remote are not allowed (they would be logged and carried in events); the exporter reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", field)
	}
	for k := range u.Query() {
		if !remoteParams[strings.ToLower(k)] {
			return fmt.Errorf("%s: parameter %q is not one a remote takes (region, endpoint); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", field, clip(k))
		}
	}
	switch {
	case u.Scheme == "dir" && u.Host == "" && strings.HasPrefix(u.Path, "/") && u.RawQuery == "":
	case u.Scheme == "s3" && u.Host != "":
	default:
		return fmt.Errorf("%s %q: want dir:///PATH or s3://BUCKET[/PREFIX][?region=R&endpoint=URL]", field, clip(u.Redacted()))
	}
	return nil
}
