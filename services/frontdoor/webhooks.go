package frontdoor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"

	"flatbed.dev/pkg/imageref"
)

// DistributionMediaType is the media type of the distribution registry's notifications.
const DistributionMediaType = "application/vnd.docker.distribution.events.v1+json"

// maxWebhookBody bounds a webhook's body (a registry sends a few KiB per event).
const maxWebhookBody = 1 << 20

// WebhookResult is the answer to a webhook: what became of each image it named.
type WebhookResult struct {
	Wished    []string  `json:"wished"`    // ids of the wishes made (or submitted again: a new digest)
	Duplicate []string  `json:"duplicate"` // ids of the wishes that had this push already
	Withdrawn []string  `json:"withdrawn"` // ids of the wishes withdrawn by a delete
	Ignored   []Ignored `json:"ignored"`

	retry bool // something could not be recorded now: the registry must deliver it again
}

// Ignored is an image a webhook named that became no wish, and why.
type Ignored struct {
	Image  string `json:"image"`
	Reason string `json:"reason"`
}

var digestRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// artifact is one image a webhook names.
type artifact struct {
	registry, repository, tag, digest string
}

func (a artifact) String() string {
	s := a.registry + "/" + a.repository
	if a.tag != "" {
		s += ":" + a.tag
	}
	if a.digest != "" {
		s += "@" + a.digest
	}
	return s
}

// check validates what a webhook says of an artifact: a registry host, a repository and
// tag an image may have, a sha256 digest.
func (a artifact) check() error {
	if a.digest != "" && !digestRe.MatchString(a.digest) {
		return fmt.Errorf("digest %q is not sha256:<64 hex digits>", a.digest)
	}
	name := "http://" + a.registry + "/" + a.repository
	if a.tag != "" {
		name += ":" + a.tag
	} else if a.digest != "" {
		name += "@" + a.digest
	}
	r, err := imageref.Parse(name)
	if err != nil {
		return err
	}
	if r.Wildcard() {
		return fmt.Errorf("tag %q is not a tag a registry stores", a.tag)
	}
	return nil
}

// distributionEnvelope is the distribution registry's notification body.
type distributionEnvelope struct {
	Events []distributionEvent `json:"events"`
}

type distributionEvent struct {
	ID     string `json:"id"`
	Action string `json:"action"` // push, pull, delete, mount
	Target struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

// manifestTypes are the media types of what a push of a tag names.
func isManifest(mediaType string) bool {
	return strings.Contains(mediaType, "manifest") || strings.Contains(mediaType, "image.index")
}

func (s *Service) distribution(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != DistributionMediaType && mt != "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type %q: want %s (the distribution registry's notifications)", r.Header.Get("Content-Type"), DistributionMediaType))
		return
	}
	var env distributionEnvelope
	if err := decodeLoose(w, r, &env); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_body", err.Error())
		return
	}
	if env.Events == nil {
		writeError(w, http.StatusBadRequest, "invalid_body", `the body has no "events": want the distribution registry's notification envelope`)
		return
	}
	res := WebhookResult{Wished: []string{}, Duplicate: []string{}, Withdrawn: []string{}, Ignored: []Ignored{}}
	for _, ev := range env.Events {
		host := ev.Request.Host
		if u, err := url.Parse(ev.Target.URL); err == nil && u.Host != "" {
			host = u.Host
		}
		a := artifact{registry: host, repository: ev.Target.Repository, tag: ev.Target.Tag, digest: ev.Target.Digest}
		switch {
		case ev.Action == "push" && isManifest(ev.Target.MediaType):
			if a.tag == "" {
				res.ignore(s, "distribution", a, "pushed by digest, without a tag: nothing to name it by in the store")
				continue
			}
			s.push(r.Context(), "distribution", a, &res)
		case ev.Action == "delete" && (isManifest(ev.Target.MediaType) || ev.Target.MediaType == "" || ev.Target.Tag != ""):
			s.remove(r.Context(), "distribution", a, &res)
		default:
			// Blob pushes, pulls, mounts: nothing to wish.
		}
	}
	s.answer(w, res)
}

// answer writes a webhook's result; a failure to record or publish is the server's fault,
// so that the registry delivers the event again.
func (s *Service) answer(w http.ResponseWriter, res WebhookResult) {
	if res.retry {
		writeJSON(w, http.StatusServiceUnavailable, res)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (res *WebhookResult) ignore(s *Service, src string, a artifact, reason string) {
	res.Ignored = append(res.Ignored, Ignored{Image: a.String(), Reason: reason})
	s.Metrics.Webhooks.WithLabelValues(src, "ignored").Inc()
}

// harborData is the data of Harbor's artifact events, in both of its payload formats.
type harborData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
	Repository struct {
		Name         string `json:"name"`
		Namespace    string `json:"namespace"`
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

// harborDefault is Harbor's default payload.
type harborDefault struct {
	Type      string     `json:"type"`
	OccurAt   int64      `json:"occur_at"`
	Operator  string     `json:"operator"`
	EventData harborData `json:"event_data"`
}

func (s *Service) harbor(w http.ResponseWriter, r *http.Request) {
	kind, data, err := readHarbor(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_body", err.Error())
		return
	}
	res := WebhookResult{Wished: []string{}, Duplicate: []string{}, Withdrawn: []string{}, Ignored: []Ignored{}}
	var pushed bool
	switch kind {
	case "PUSH_ARTIFACT", "harbor.artifact.pushed":
		pushed = true
	case "DELETE_ARTIFACT", "harbor.artifact.deleted":
	default:
		s.answer(w, res) // scans, quotas, replications: nothing to wish
		return
	}
	repo := data.Repository.RepoFullName
	if repo == "" {
		writeError(w, http.StatusBadRequest, "invalid_body", "the event names no repository (repository.repo_full_name)")
		return
	}
	for _, rs := range data.Resources {
		host, rest, ok := strings.Cut(rs.ResourceURL, "/")
		if !ok || host == "" || !strings.HasPrefix(rest, repo) {
			writeError(w, http.StatusBadRequest, "invalid_body", fmt.Sprintf("resource_url %q does not name repository %q on a registry", rs.ResourceURL, repo))
			return
		}
		a := artifact{registry: host, repository: repo, tag: rs.Tag, digest: rs.Digest}
		if strings.HasPrefix(a.tag, "sha256:") {
			a.tag = "" // Harbor names an untagged artifact by its digest
		}
		if !pushed {
			s.remove(r.Context(), "harbor", a, &res)
			continue
		}
		if a.tag == "" {
			res.ignore(s, "harbor", a, "pushed by digest, without a tag: nothing to name it by in the store")
			continue
		}
		s.push(r.Context(), "harbor", a, &res)
	}
	s.answer(w, res)
}

// decodeLoose reads one JSON value, allowing fields flatbed does not use (webhook payloads
// carry many).
func decodeLoose(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body is not the JSON expected: %w", err)
	}
	return nil
}

// push turns a pushed image that the webhook wishlist names into a wish (or submits the
// wish again for a new digest); a push it has seen already changes nothing.
func (s *Service) push(ctx context.Context, src string, a artifact, res *WebhookResult) {
	if err := a.check(); err != nil {
		res.ignore(s, src, a, "not an image: "+err.Error())
		return
	}
	if s.Filter == nil {
		res.ignore(s, src, a, "the front door has no --webhook-wishlist")
		return
	}
	pat, ok := s.Filter.Match(a.registry, a.repository, a.tag)
	if !ok {
		res.ignore(s, src, a, "matches no input of the webhook wishlist "+s.Filter.Path)
		return
	}
	ref, err := imageref.Parse(pat.Scheme + "://" + a.registry + "/" + a.repository + ":" + a.tag)
	if err != nil {
		res.ignore(s, src, a, err.Error())
		return
	}
	thin, err := ref.Expand(s.Filter.Format())
	if err == nil {
		var out imageref.Ref
		if out, err = imageref.Parse(thin); err == nil {
			thin = out.String()
		}
	}
	if err != nil {
		res.ignore(s, src, a, "the webhook wishlist's output_format gives no thin image for it: "+err.Error())
		return
	}
	id, outcome, err := s.wishPushed(ctx, src, ref, thin, a.digest)
	switch {
	case err != nil:
		s.Log.Error("a pushed image could not be wished; the registry will deliver it again", "image", ref.String(), "err", err)
		res.ignore(s, src, a, "could not be recorded now ("+err.Error()+"): deliver it again")
		res.retry = true
		return
	case outcome == "thin":
		res.ignore(s, src, a, "it is the thin image of wish "+id)
		return
	case outcome == "duplicate":
		res.Duplicate = append(res.Duplicate, id)
	default:
		res.Wished = append(res.Wished, id)
		s.Log.Info("pushed image wished", "source", src, "wish", id, "image", ref.String(), "digest", a.digest)
	}
	s.Metrics.Webhooks.WithLabelValues(src, outcome).Inc()
}

// errRetry asks the registry to deliver the event again.
var errRetry = errors.New("deliver again")

// wishPushed records and submits the wish for a pushed image; the outcome is wished,
// duplicate (this digest was submitted already) or thin (the image is a wish's thin image).
func (s *Service) wishPushed(ctx context.Context, src string, ref imageref.Ref, thin, digest string) (string, string, error) {
	wishes, err := list[Wish](ctx, s.rec.wishes)
	if err != nil {
		return "", "", err
	}
	for _, w := range wishes {
		if w.ThinImage != "" && w.ThinImage == ref.String() {
			return w.ID, "thin", nil
		}
	}
	key := Key(s.Filter.CvmfsRepo, ref.String())
	for {
		var cur Wish
		rev, err := get(ctx, s.rec.wishes, key, &cur)
		if err != nil {
			return key, "", err
		}
		if rev != 0 && digest != "" && cur.Digest == digest {
			if cur.Published {
				return key, "duplicate", nil
			}
			return key, "wished", s.publish(ctx, &cur) // recorded, then the process stopped: finish it
		}
		now := time.Now().UTC()
		w := Wish{ID: key, Image: ref.String(), CvmfsRepo: s.Filter.CvmfsRepo, ThinImage: thin, User: s.Filter.User, Source: src,
			CreatedAt: now, UpdatedAt: now, Digest: digest, Submission: newSubmission(key)}
		if digest != "" {
			w.Submission = key + "." + strings.TrimPrefix(digest, "sha256:")[:16]
		}
		if rev != 0 {
			w.CreatedAt, w.Source = cur.CreatedAt, cur.Source
			if cur.ThinImage != "" || cur.Source == "api" {
				w.ThinImage, w.User = cur.ThinImage, cur.User // the API's wish says how it is made
			}
		}
		job := w.job()
		if err := job.Validate(); err != nil {
			return key, "", fmt.Errorf("%w: %w", errRetry, err)
		}
		err = put(ctx, s.rec.wishes, key, w, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return key, "", err
		}
		return key, "wished", s.publish(ctx, &w)
	}
}

// remove withdraws the wishes of a deleted image: those of its repository whose tag, or
// whose last pushed digest, the delete names.
func (s *Service) remove(ctx context.Context, src string, a artifact, res *WebhookResult) {
	if err := a.check(); err != nil {
		res.ignore(s, src, a, "not an image: "+err.Error())
		return
	}
	wishes, err := list[Wish](ctx, s.rec.wishes)
	if err != nil {
		res.ignore(s, src, a, "could not be read now ("+err.Error()+"): deliver it again")
		res.retry = true
		return
	}
	n := 0
	for _, w := range wishes {
		ref, err := imageref.Parse(w.Image)
		if err != nil || !strings.EqualFold(ref.Registry, a.registry) || ref.Repository != a.repository {
			continue
		}
		if (a.tag != "" && ref.Tag == a.tag) || (a.digest != "" && (w.Digest == a.digest || ref.Digest == a.digest)) {
			if err := s.withdraw(ctx, w.ID); err != nil {
				res.ignore(s, src, a, err.Error())
				res.retry = true
				continue
			}
			n++
			res.Withdrawn = append(res.Withdrawn, w.ID)
			s.Metrics.Webhooks.WithLabelValues(src, "withdrawn").Inc()
			s.Log.Info("deleted image withdrawn", "source", src, "wish", w.ID, "image", w.Image)
		}
	}
	if n == 0 {
		res.ignore(s, src, a, "deleted, and no wish names it")
	}
}

// readHarbor reads a Harbor webhook: its default payload, or CloudEvents in binary mode
// (attributes in ce- headers, the data as the body) or structured mode (the whole event as
// JSON). It returns the event type and the data.
func readHarbor(w http.ResponseWriter, r *http.Request) (string, harborData, error) {
	var data harborData
	var ev *event.Event
	if r.Header.Get("Ce-Specversion") != "" {
		r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBody)
		e, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
		if err != nil {
			return "", data, fmt.Errorf("not a valid CloudEvent: %w", err)
		}
		ev = e
	} else {
		var raw json.RawMessage
		if err := decodeLoose(w, r, &raw); err != nil {
			return "", data, err
		}
		var probe struct {
			SpecVersion string `json:"specversion"`
		}
		_ = json.Unmarshal(raw, &probe)
		if probe.SpecVersion == "" {
			var def harborDefault
			if err := json.Unmarshal(raw, &def); err != nil || def.Type == "" {
				return "", data, errors.New(`want Harbor's default payload ({"type": "PUSH_ARTIFACT", "event_data": ...}) or its CloudEvents payload`)
			}
			return def.Type, def.EventData, nil
		}
		ev = &event.Event{}
		if err := json.Unmarshal(raw, ev); err != nil {
			return "", data, fmt.Errorf("not a valid CloudEvent: %w", err)
		}
	}
	if err := ev.Validate(); err != nil {
		return "", data, fmt.Errorf("not a valid CloudEvent: %w", err)
	}
	if err := ev.DataAs(&data); err != nil {
		return "", data, fmt.Errorf("the CloudEvent's data: %w", err)
	}
	return ev.Type(), data, nil
}
