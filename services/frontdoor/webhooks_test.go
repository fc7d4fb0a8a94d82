package frontdoor

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/pkg/wishlist"
)

const testFilter = `version: 1
user: ci
cvmfs_repo: unpacked.example.org
output_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'
input:
  - 'https://harbor.example.com/library/*'
  - 'http://registry.example.org:5000/apps/*'
`

func filterDoor(t *testing.T) *door {
	t.Helper()
	f, err := wishlist.ParseFilter([]byte(testFilter), "webhooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return openDoor(t, t.TempDir(), func(s *Service) { s.Filter = f })
}

// post sends a fixture (or body) to a webhook with the given headers and checks the answer
// against the OpenAPI document.
func (d *door) post(t *testing.T, path string, body []byte, headers map[string]string) (int, WebhookResult, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", d.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAnswer(t, "POST", path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	var res WebhookResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, res, raw
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// submitted decodes every wish.submitted in the stream.
func submitted(t *testing.T, d *door) []events.Job {
	t.Helper()
	n := storedSubjects(t, d)["flatbed.wish.submitted"]
	var jobs []events.Job
	st, _ := d.b.JetStream().Stream(t.Context(), "FLATBED")
	for seq := uint64(1); len(jobs) < n; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			continue
		}
		if m.Subject != "flatbed.wish.submitted" {
			continue
		}
		var ws events.WishSubmitted
		if err := json.Unmarshal(m.Data, &ws); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, ws.Job)
	}
	return jobs
}

var bearer = map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}

// Harbor's payloads (fixtures built from Harbor's documentation), default and CloudEvents in
// both modes: a pushed tag the webhook wishlist names becomes a wish with its repository and
// output format, a repeated delivery changes nothing, an untagged push and a repository
// outside the filter are ignored, a delete withdraws the wish.
func TestHarborWebhooks(t *testing.T) {
	d := filterDoor(t)
	alpine := Key("unpacked.example.org", "https://harbor.example.com/library/alpine:3.17")
	nginx := Key("unpacked.example.org", "https://harbor.example.com/library/nginx:1.25")

	code, res, raw := d.post(t, "/webhooks/harbor", fixture(t, "harbor-default-push.json"), bearer)
	if code != 200 || len(res.Wished) != 1 || res.Wished[0] != alpine {
		t.Fatalf("default push: %d %s", code, raw)
	}
	_, res, raw = d.post(t, "/webhooks/harbor", fixture(t, "harbor-default-push.json"), bearer)
	if len(res.Duplicate) != 1 || len(res.Wished) != 0 {
		t.Errorf("default push again: %s", raw)
	}
	ce := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/cloudevents+json"}
	if _, res, raw = d.post(t, "/webhooks/harbor", fixture(t, "harbor-cloudevents-push.json"), ce); len(res.Wished) != 1 || res.Wished[0] != nginx {
		t.Errorf("CloudEvents push (structured): %s", raw)
	}
	// The same event in binary mode: attributes in ce- headers, the data as the body.
	var structured map[string]any
	_ = json.Unmarshal(fixture(t, "harbor-cloudevents-push.json"), &structured)
	data, _ := json.Marshal(structured["data"])
	binary := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json", "Ce-Specversion": "1.0",
		"Ce-Id": "66e18103-09c1-41f6-982f-37df223f3eeb", "Ce-Source": "/projects/2/webhook/policies/15", "Ce-Type": "harbor.artifact.pushed"}
	if _, res, raw = d.post(t, "/webhooks/harbor", data, binary); len(res.Duplicate) != 1 || res.Duplicate[0] != nginx {
		t.Errorf("CloudEvents push (binary), a duplicate: %s", raw)
	}
	if _, res, raw = d.post(t, "/webhooks/harbor", fixture(t, "harbor-cloudevents-untagged.json"), ce); len(res.Ignored) != 1 || len(res.Wished) != 0 {
		t.Errorf("untagged push: %s", raw)
	}
	if _, res, raw = d.post(t, "/webhooks/harbor", fixture(t, "harbor-default-outside.json"), bearer); len(res.Ignored) != 1 || !strings.Contains(res.Ignored[0].Reason, "matches no input") {
		t.Errorf("push outside the filter: %s", raw)
	}
	jobs := submitted(t, d)
	if len(jobs) != 2 {
		t.Fatalf("%d wish.submitted, want 2 (alpine, nginx): %+v", len(jobs), jobs)
	}
	// The wish names the manifest the registry said it took (the tag may not point at it yet).
	if j := jobs[0]; j.Image != "https://harbor.example.com/library/alpine:3.17@sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4" || j.CvmfsRepo != "unpacked.example.org" ||
		j.ThinImage != "https://harbor.example.com/thin/library/alpine:3.17" || j.User != "ci" || j.CorrelationID != alpine {
		t.Errorf("the wish of the push: %+v", j)
	}
	if _, res, raw = d.post(t, "/webhooks/harbor", fixture(t, "harbor-default-delete.json"), bearer); len(res.Withdrawn) != 1 || res.Withdrawn[0] != alpine {
		t.Errorf("delete: %s", raw)
	}
	var wl WishList
	d.call(t, "GET", "/api/v1/wishes", testToken, nil, &wl)
	if len(wl.Wishes) != 1 || wl.Wishes[0].ID != nginx || wl.Wishes[0].Source != "harbor" {
		t.Errorf("wishes after the delete: %+v", wl.Wishes)
	}
	for _, bad := range []string{`{}`, `{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"tag":"1","resource_url":"h/x:1"}],"repository":{}}}`, `[`,
		`{"specversion":"1.0","type":"harbor.artifact.pushed"}`} {
		if code, _, raw := d.post(t, "/webhooks/harbor", []byte(bad), bearer); code != 400 {
			t.Errorf("%s: %d %s, want 400", bad, code, raw)
		}
	}
	if code, _, _ := d.post(t, "/webhooks/harbor", fixture(t, "harbor-default-push.json"), map[string]string{"Content-Type": "application/json"}); code != 401 {
		t.Errorf("without the token: %d", code)
	}
}

// The distribution registry's envelope: the manifest pushed by tag under the filter becomes a
// wish (over the pattern's scheme), blobs and other repositories are not; a new digest of the
// tag submits the wish again.
func TestDistributionWebhook(t *testing.T) {
	d := filterDoor(t)
	web := Key("unpacked.example.org", "http://registry.example.org:5000/apps/web:1.0")
	h := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": DistributionMediaType}
	body := fixture(t, "distribution-push.json")
	code, res, raw := d.post(t, "/webhooks/distribution", body, h)
	if code != 200 || len(res.Wished) != 1 || res.Wished[0] != web || len(res.Ignored) != 1 || !strings.Contains(res.Ignored[0].Image, "other/tool") {
		t.Fatalf("push: %d %s", code, raw)
	}
	if _, res, raw = d.post(t, "/webhooks/distribution", body, h); len(res.Duplicate) != 1 || len(res.Wished) != 0 {
		t.Errorf("the same envelope again: %s", raw)
	}
	moved := bytes.ReplaceAll(body, []byte("sha256:11f8b5"), []byte("sha256:99f8b5"))
	if _, res, raw = d.post(t, "/webhooks/distribution", moved, h); len(res.Wished) != 1 {
		t.Errorf("the tag pushed with a new digest: %s", raw)
	}
	jobs := submitted(t, d)
	if len(jobs) != 2 || jobs[0].Image != "http://registry.example.org:5000/apps/web:1.0@sha256:11f8b5a1e8f2c0d9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4" ||
		!strings.HasSuffix(jobs[1].Image, "@sha256:99f8b5a1e8f2c0d9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4") || jobs[0].WishID == jobs[1].WishID {
		t.Errorf("wish.submitted: %+v", jobs)
	}
	if code, _, _ := d.post(t, "/webhooks/distribution", body, map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "text/plain"}); code != 415 {
		t.Errorf("text/plain: %d, want 415", code)
	}
	if code, _, _ := d.post(t, "/webhooks/distribution", []byte(`{"nothing":1}`), h); code != 400 {
		t.Errorf("no events: %d, want 400", code)
	}
	bad := bytes.ReplaceAll(body, []byte(`"tag": "1.0"`), []byte(`"tag": "../../x"`))
	if _, res, raw = d.post(t, "/webhooks/distribution", bad, h); len(res.Wished) != 0 || len(res.Ignored) != 2 {
		t.Errorf("a hostile tag: %s", raw)
	}
	del := []byte(`{"events":[{"action":"delete","target":{"repository":"apps/web","digest":"sha256:99f8b5a1e8f2c0d9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4","url":"http://registry.example.org:5000/v2/apps/web/manifests/sha256:99f8b5a1e8f2c0d9b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4"},"request":{"host":"registry.example.org:5000"}}]}`)
	if _, res, raw = d.post(t, "/webhooks/distribution", del, h); len(res.Withdrawn) != 1 || res.Withdrawn[0] != web {
		t.Errorf("delete: %s", raw)
	}
}
