package events_test

import (
	"strings"
	"testing"

	"flatbed.dev/events"
)

// exportJob is a wish for the exported output alone.
func exportJob(remote string) events.Job {
	j := sampleJob()
	j.CvmfsRepo = ""
	j.Outputs = []string{events.OutputExported}
	j.ExportRemote = remote
	return j
}

// A wish for the exported output names a dir:// or s3:// remote without credentials; the
// export settings without the output, a remote with user information or a signed URL's
// parameters, another scheme and an unknown compression are refused, and the refusal never
// repeats the credentials.
func TestJobExportValidate(t *testing.T) {
	for _, remote := range []string{"dir:///srv/images", "s3://bucket", "s3://bucket/docker-repo?region=us-west-2", "s3://b/p?region=us-east-1&endpoint=http://127.0.0.1:9000"} {
		if err := exportJob(remote).Validate(); err != nil {
			t.Errorf("%s refused: %v", remote, err)
		}
	}
	zstd := exportJob("dir:///srv/images")
	zstd.ExportCompress = "zstd"
	if err := zstd.Validate(); err != nil {
		t.Errorf("zstd refused: %v", err)
	}
	notAsked := relocateJob()
	notAsked.ExportRemote = "dir:///srv/images"
	lz4 := exportJob("dir:///srv/images")
	lz4.ExportCompress = "lz4"
	for name, tt := range map[string]struct {
		job  events.Job
		want string
	}{
		"no remote":          {exportJob(""), "job.export_remote: empty"},
		"not asked for":      {notAsked, "does not ask for exported"},
		"user information":   {exportJob("s3://AKIAEXAMPLE:s3cr3t@bucket/x"), "credentials"},
		"signed URL":         {exportJob("s3://bucket/x?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIAEXAMPLE"), "credentials"},
		"relative directory": {exportJob("dir://srv/images"), "dir:///PATH"},
		"other scheme":       {exportJob("https://bucket.s3.amazonaws.com/x"), "dir:///PATH"},
		"lz4":                {lz4, "want zstd"},
	} {
		err := tt.job.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "AKIAEXAMPLE") {
			t.Errorf("%s: the error repeats the credentials: %v", name, err)
		}
	}
}
