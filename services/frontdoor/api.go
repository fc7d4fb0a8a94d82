package frontdoor

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/wishlist"
)

// Route is one route of the front door: the OpenAPI description must name each of them.
type Route struct {
	Method string
	Path   string // net/http pattern path, {name} for a parameter (as OpenAPI writes it)
	Auth   bool   // needs the bearer token
	Cookie bool   // the token may come in the status page's cookie instead (GET pages only)
	h      http.HandlerFunc
}

// Routes lists every route the front door answers.
func (s *Service) Routes() []Route {
	return []Route{
		{"GET", "/healthz", false, false, s.healthz},
		{"GET", "/openapi.json", false, false, s.openAPI},
		{"GET", "/api/v1/wishes", true, false, s.listWishes},
		{"POST", "/api/v1/wishes", true, false, s.createWish},
		{"GET", "/api/v1/wishes/{id}", true, false, s.getWish},
		{"DELETE", "/api/v1/wishes/{id}", true, false, s.deleteWish},
		{"GET", "/api/v1/images", true, false, s.listImages},
		{"GET", "/api/v1/images/{id}", true, false, s.getImage},
		{"GET", "/api/v1/images/{id}/history", true, false, s.imageHistory},
		{"POST", "/webhooks/distribution", true, false, s.distribution},
		{"POST", "/webhooks/harbor", true, false, s.harbor},
		{"GET", "/status", true, true, s.statusPage},
		{"GET", "/status/events", true, true, s.statusEvents},
		{"GET", "/login", false, false, s.loginForm},
		{"POST", "/login", false, false, s.login},
	}
}

// Handler is the front door's HTTP handler: Routes behind the bearer token.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.Routes() {
		pattern := r.Method + " " + r.Path
		h := r.h
		if r.Auth {
			h = s.authorized(h, r.Cookie)
		}
		mux.Handle(pattern, s.counted(r.Method+" "+r.Path, h))
	}
	return mux
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Service) counted(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h(rec, r)
		s.Metrics.Requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
	}
}

// authorized lets through requests carrying the token ("Authorization: Bearer TOKEN"),
// compared in constant time; the token is never logged.
func (s *Service) authorized(h http.HandlerFunc, cookie bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.tokenOK(r, cookie) {
			if cookie && r.URL.Path == "/status" {
				http.Redirect(w, r, "/login", http.StatusSeeOther) // a browser: sign in first
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="flatbed"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "this needs the front door's bearer token: send the header 'Authorization: Bearer TOKEN' (the content of the --token-file)")
			return
		}
		h(w, r)
	}
}

func (s *Service) tokenOK(r *http.Request, cookie bool) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && cookie {
		if c, err := r.Cookie(tokenCookie); err == nil {
			got, ok = c.Value, true
		}
	}
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), s.Token) == 1
}

// tokenCookie carries the token for a browser (the status page's sign-in sets it).
const tokenCookie = "flatbed_token"

// Problem is the body of every error answer.
type Problem struct {
	Error string `json:"error"` // what is wrong and what to do
	Code  string `json:"code"`  // a stable word for programs
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Problem{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Service) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// WishRequest is the body of POST /api/v1/wishes.
type WishRequest struct {
	Image        string `json:"image"`                   // [scheme://]registry/repository[:tag][@digest]
	CvmfsRepo    string `json:"cvmfs_repo,omitempty"`    // e.g. unpacked.cern.ch; needed for the unpacked output
	OutputFormat string `json:"output_format,omitempty"` // the thin image's name, as in a wishlist
	ThinImage    string `json:"thin_image,omitempty"`    // the thin image's name, written out
	SkipThin     bool   `json:"skip_thin,omitempty"`     // push no thin image
	User         string `json:"user,omitempty"`          // the wishlist's user
	WishOptions
}

// WishOptions are what a wish asks for beyond the image, its repository and its thin image:
// the fields of events.Job (and events/client.Wish) of the same names. A wish keeps them, so
// that every submission of it (a registry's push of a new digest) asks for the same.
type WishOptions struct {
	MultiArch    bool `json:"multi_arch,omitempty"`    // every linux platform of an index (DUCC's -m), not only the host's
	ConvertAgain bool `json:"convert_again,omitempty"` // convert even when the store holds the image (-g)
	SkipPodman   bool `json:"skip_podman,omitempty"`   // no entry in the repository's podman store (-p)
	// Outputs names what the wish asks for (unpacked, thin, relocated, lazy, exported); none
	// asks for the store and the thin image.
	Outputs           []string `json:"outputs,omitempty"`
	RelocatePrefix    string   `json:"relocate_prefix,omitempty"`     // relocated: the repository prefix
	RelocateNoFlatten bool     `json:"relocate_no_flatten,omitempty"` // relocated: keep the hierarchy under the prefix
	LazyImage         string   `json:"lazy_image,omitempty"`          // lazy: where the converted image goes
	LazyFormat        string   `json:"lazy_format,omitempty"`         // lazy: estargz (the default) or zstd-chunked
	LazyOCI           bool     `json:"lazy_oci,omitempty"`            // lazy: OCI media types
	LazyReferrer      bool     `json:"lazy_referrer,omitempty"`       // lazy: a subject naming the original
	LazyPrioritized   []string `json:"lazy_prioritized,omitempty"`    // lazy: the files eStargz puts first
	ExportRemote      string   `json:"export_remote,omitempty"`       // exported: dir:///PATH or s3://BUCKET[/PREFIX]
	ExportCompress    string   `json:"export_compress,omitempty"`     // exported: zstd keeps layers recompressed
}

// defaultLazyFormat is the lazy output's format when a wish names none (flatbed lazy's).
const defaultLazyFormat = "estargz"

// WishView is a wish with its image's state.
type WishView struct {
	Wish
	State *Image `json:"state,omitempty"`
}

// WishList is the answer of GET /api/v1/wishes.
type WishList struct {
	Wishes []WishView `json:"wishes"`
}

// ImageList is the answer of GET /api/v1/images.
type ImageList struct {
	Images []Image `json:"images"`
}

// History is the answer of GET /api/v1/images/{id}/history: the image's states, oldest
// first, each with the event that set it.
type History struct {
	ID     string  `json:"id"`
	States []Image `json:"states"`
}

// maxBody bounds an API request's body.
const maxBody = 64 << 10

// decode reads a JSON body into v, refusing unknown fields and anything after the value.
func decode(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body is not the JSON object expected: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("the body holds more than one JSON value")
	}
	return nil
}

// wishError is a refused wish: its status and code.
type wishError struct {
	status int
	code   string
	err    error
}

func (e *wishError) Error() string { return e.err.Error() }

func refuse(status int, code string, format string, args ...any) error {
	return &wishError{status: status, code: code, err: fmt.Errorf(format, args...)}
}

// check validates a wish as docker2cvmfs's add-desiderata did, each problem its own error:
// both references parse, the wish is not there already, the input manifest is reachable.
func (s *Service) check(ctx context.Context, req WishRequest) (*Wish, imageref.Ref, error) {
	ref, err := imageref.Parse(req.Image)
	if err != nil {
		return nil, ref, refuse(http.StatusBadRequest, "invalid_image", "image: %v", err)
	}
	if ref.Wildcard() {
		return nil, ref, refuse(http.StatusBadRequest, "invalid_image", "image %s: a wish names one tag, and %q is a wildcard; wish each tag", ref, ref.Tag)
	}
	wants := events.Job{Outputs: req.Outputs}
	if wants.Wants(events.OutputUnpacked) || req.CvmfsRepo != "" {
		if err := wishlist.CheckRepo(req.CvmfsRepo); err != nil {
			return nil, ref, refuse(http.StatusBadRequest, "invalid_cvmfs_repo", "%v", err)
		}
	}
	if wants.Wants(events.OutputLazy) && req.LazyFormat == "" {
		req.LazyFormat = defaultLazyFormat
	}
	thin := ""
	switch {
	case !wants.Wants(events.OutputThin) && (req.ThinImage != "" || req.OutputFormat != ""):
		return nil, ref, refuse(http.StatusBadRequest, "invalid_output", "thin_image and output_format name the thin image, but outputs does not ask for %s", events.OutputThin)
	case !wants.Wants(events.OutputThin):
	case req.SkipThin && (req.ThinImage != "" || req.OutputFormat != ""):
		return nil, ref, refuse(http.StatusBadRequest, "invalid_output", "skip_thin asks for no thin image: leave thin_image and output_format out")
	case req.ThinImage != "" && req.OutputFormat != "":
		return nil, ref, refuse(http.StatusBadRequest, "invalid_output", "give thin_image or output_format, not both")
	case req.SkipThin:
	case req.ThinImage != "":
		thin = req.ThinImage
	default:
		format := req.OutputFormat
		if format == "" {
			format = imageref.DefaultOutputFormat
		}
		if err := imageref.CheckFormat(format); err != nil {
			return nil, ref, refuse(http.StatusBadRequest, "invalid_output", "output_format: %v", err)
		}
		if thin, err = ref.Expand(format); err != nil {
			return nil, ref, refuse(http.StatusBadRequest, "invalid_output", "output_format %q for %s: %v", format, ref, err)
		}
	}
	if thin != "" {
		out, err := imageref.Parse(thin)
		if err != nil {
			return nil, ref, refuse(http.StatusBadRequest, "invalid_output", "the thin image %q: %v", thin, err)
		}
		thin = out.String()
	}
	now := time.Now().UTC()
	w := &Wish{ID: Key(req.CvmfsRepo, stateName(ref)), Image: ref.String(), CvmfsRepo: req.CvmfsRepo, ThinImage: thin, User: req.User,
		Source: "api", CreatedAt: now, UpdatedAt: now, WishOptions: req.WishOptions}
	job := w.job()
	if err := job.Validate(); err != nil {
		return nil, ref, refuse(http.StatusBadRequest, "invalid_wish", "%v", err)
	}
	var old Wish
	if rev, err := get(ctx, s.rec.wishes, w.ID, &old); err != nil {
		return nil, ref, err
	} else if rev != 0 {
		if _, err := s.unfinished(ctx, w); err != nil {
			return nil, ref, err
		} // recorded but never published: this request finishes it
	}
	if err := s.reachable(ctx, ref); err != nil {
		return nil, ref, refuse(http.StatusUnprocessableEntity, "unreachable", "the manifest of %s cannot be read: %v", imageref.Redact(ref.String()), err)
	}
	return w, ref, nil
}

// reachable asks the registry for the image's manifest (a HEAD).
func (s *Service) reachable(ctx context.Context, ref imageref.Ref) error {
	gref, err := ref.GGCR()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ctx = registry.ContextWithScheme(ctx, ref.Scheme, ref.Registry)
	return registry.Explain(s.reg.Do(ctx, func(ro []remote.Option) error {
		_, err := remote.Head(gref, ro...)
		return err
	}))
}

// job is the wish.submitted job of the wish's last submission.
func (w *Wish) job() events.WishSubmitted {
	sub := w.Submission
	if sub == "" {
		sub = w.ID + ".x"
	}
	image := w.Image
	if w.Digest != "" && !strings.Contains(image, "@") {
		// A registry said which manifest it took: the wish names it, since the tag may
		// not point at it yet (the distribution registry notifies before it tags).
		image += "@" + w.Digest
	}
	o := w.WishOptions
	return events.WishSubmitted{Job: events.Job{WishID: sub, CorrelationID: w.ID, Image: image, CvmfsRepo: w.CvmfsRepo,
		ThinImage: w.ThinImage, SkipThin: w.ThinImage == "", User: w.User, SubmittedAt: w.UpdatedAt,
		MultiArch: o.MultiArch, ConvertAgain: o.ConvertAgain, SkipPodman: o.SkipPodman, Outputs: o.Outputs,
		RelocatePrefix: o.RelocatePrefix, RelocateNoFlatten: o.RelocateNoFlatten,
		LazyImage: o.LazyImage, LazyFormat: o.LazyFormat, LazyOCI: o.LazyOCI, LazyReferrer: o.LazyReferrer, LazyPrioritized: o.LazyPrioritized,
		ExportRemote: o.ExportRemote, ExportCompress: o.ExportCompress}}
}

// newSubmission is a fresh wish id for a submission of the wish.
func newSubmission(key string) string { return key + "." + strings.ToLower(rand.Text()[:13]) }

// publish publishes the wish's submission (its id makes a second publish a duplicate
// JetStream drops) and records that it was.
func (s *Service) publish(ctx context.Context, w *Wish) error {
	data := w.job()
	env, err := events.New(events.WishSubmittedType, source, events.ID(events.WishSubmittedType, data.Job.WishID), data.Job, data.Job.Image, data)
	if err != nil {
		return err
	}
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	for {
		var cur Wish
		rev, err := get(ctx, s.rec.wishes, w.ID, &cur)
		if err != nil || rev == 0 || cur.Submission != w.Submission || cur.Published {
			return err // deleted or submitted anew meanwhile: theirs to finish
		}
		cur.Published = true
		if err := put(ctx, s.rec.wishes, w.ID, cur, rev); !errors.Is(err, errConflict) {
			w.Published = err == nil
			return err
		}
	}
}

func (s *Service) createWish(w http.ResponseWriter, r *http.Request) {
	var req WishRequest
	if err := decode(w, r, &req, maxBody); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_body", err.Error()+`; send {"image": "...", "cvmfs_repo": "..."}`)
		return
	}
	wish, _, err := s.check(r.Context(), req)
	if err == nil {
		wish.Submission = newSubmission(wish.ID)
		err = put(r.Context(), s.rec.wishes, wish.ID, wish, 0)
		if errors.Is(err, errConflict) {
			wish, err = s.unfinished(r.Context(), wish)
		}
	}
	if err == nil {
		err = s.publish(r.Context(), wish)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.Log.Info("wish added", "wish", wish.ID, "image", imageref.Redact(wish.Image), "cvmfs_repo", wish.CvmfsRepo)
	writeJSON(w, http.StatusCreated, WishView{Wish: *wish})
}

// unfinished is the recorded wish of the same id as w when it asks for the same as w and was
// never published: its publish failed (a NATS hiccup answered 503, "try again") and this is
// the client trying again, which finishes it rather than being told it is a duplicate. Any
// other recorded wish makes w a duplicate.
func (s *Service) unfinished(ctx context.Context, w *Wish) (*Wish, error) {
	var cur Wish
	rev, err := get(ctx, s.rec.wishes, w.ID, &cur)
	if err != nil {
		return nil, err
	}
	if rev != 0 && !cur.Published && cur.Image == w.Image && cur.CvmfsRepo == w.CvmfsRepo && cur.ThinImage == w.ThinImage &&
		cur.User == w.User && reflect.DeepEqual(cur.WishOptions, w.WishOptions) {
		return &cur, nil
	}
	return nil, refuse(http.StatusConflict, "duplicate", "%s is wished already for %s (wish %s); delete it first to change it", imageref.Redact(w.Image), w.CvmfsRepo, w.ID)
}

// PublishEvery is how often Serve publishes the wishes recorded but never published (their
// publish failed and nobody tried again), once they are UnpublishedAge old.
var (
	PublishEvery   = time.Minute
	UnpublishedAge = 10 * time.Second
)

// publishUnpublished publishes every recorded wish whose publish failed at least
// UnpublishedAge ago. A wish being added right now is left to its request (were it published
// twice, its submission id makes the second a duplicate JetStream drops).
func (s *Service) publishUnpublished(ctx context.Context) (int, error) {
	wishes, err := list[Wish](ctx, s.rec.wishes)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, w := range wishes {
		if w.Published || time.Since(w.UpdatedAt) < UnpublishedAge {
			continue
		}
		if err := s.publish(ctx, &w); err != nil {
			return n, fmt.Errorf("publishing wish %s (%s): %w", w.ID, imageref.Redact(w.Image), err)
		}
		s.Log.Info("published a wish whose publish had failed", "wish", w.ID, "image", imageref.Redact(w.Image))
		n++
	}
	return n, nil
}

// fail answers a refused wish with its status, and anything else as the server's fault.
func (s *Service) fail(w http.ResponseWriter, err error) {
	var we *wishError
	if errors.As(err, &we) {
		writeError(w, we.status, we.code, we.Error())
		return
	}
	s.Log.Error("front door request failed", "err", err)
	writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error()+"; try again")
}

func (s *Service) id(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !validKey(id) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("%q is not a wish or image id (24 lower-case hex digits)", id))
		return "", false
	}
	return id, true
}

func (s *Service) listWishes(w http.ResponseWriter, r *http.Request) {
	wishes, err := list[Wish](r.Context(), s.rec.wishes)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := WishList{Wishes: []WishView{}}
	for _, wish := range wishes {
		v := WishView{Wish: wish}
		var img Image
		if rev, err := get(r.Context(), s.rec.images, wish.ID, &img); err == nil && rev != 0 {
			v.State = &img
		}
		out.Wishes = append(out.Wishes, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) getWish(w http.ResponseWriter, r *http.Request) {
	id, ok := s.id(w, r)
	if !ok {
		return
	}
	var wish Wish
	rev, err := get(r.Context(), s.rec.wishes, id, &wish)
	if err != nil {
		s.fail(w, err)
		return
	}
	if rev == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no wish "+id)
		return
	}
	v := WishView{Wish: wish}
	var img Image
	if rev, err := get(r.Context(), s.rec.images, id, &img); err == nil && rev != 0 {
		v.State = &img
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Service) deleteWish(w http.ResponseWriter, r *http.Request) {
	id, ok := s.id(w, r)
	if !ok {
		return
	}
	var wish Wish
	rev, err := get(r.Context(), s.rec.wishes, id, &wish)
	if err == nil && rev == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no wish "+id)
		return
	}
	if err == nil {
		err = s.withdraw(r.Context(), id)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.Log.Info("wish withdrawn", "wish", id, "image", imageref.Redact(wish.Image))
	w.WriteHeader(http.StatusNoContent)
}

// withdraw deletes the wish (its history stays in the bucket). The store keeps what was
// converted: removing that is garbage collection's business.
func (s *Service) withdraw(ctx context.Context, id string) error {
	if err := s.rec.wishes.Delete(ctx, id); err != nil {
		return fmt.Errorf("deleting wish %s: %w", id, err)
	}
	s.changed()
	return nil
}

func (s *Service) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := list[Image](r.Context(), s.rec.images)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ImageList{Images: imgs})
}

func (s *Service) getImage(w http.ResponseWriter, r *http.Request) {
	id, ok := s.id(w, r)
	if !ok {
		return
	}
	var img Image
	rev, err := get(r.Context(), s.rec.images, id, &img)
	if err != nil {
		s.fail(w, err)
		return
	}
	if rev == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no image "+id)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

func (s *Service) imageHistory(w http.ResponseWriter, r *http.Request) {
	id, ok := s.id(w, r)
	if !ok {
		return
	}
	states, err := s.rec.history(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	if len(states) == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no image "+id)
		return
	}
	writeJSON(w, http.StatusOK, History{ID: id, States: states})
}
