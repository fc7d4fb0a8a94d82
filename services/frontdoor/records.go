package frontdoor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/pkg/imageref"
)

// The JetStream KV buckets of the front door. Both keep history: a wish's earlier versions
// (and its deletion), an image's states one per event that changed it.
const (
	WishesBucket = "FLATBED_FRONTDOOR_WISHES"
	ImagesBucket = "FLATBED_FRONTDOOR_IMAGES"
	// ImageHistory is how many states of one image are kept (JetStream's most).
	ImageHistory = 64
)

// The states of an image.
const (
	StatePending = "pending" // wished, not resolved yet
	StateRunning = "running" // resolved, being converted
	StateDone    = "done"    // conversion.completed
	StateFailed  = "failed"  // conversion.failed
)

// Wish is one wish the front door keeps: an image to keep converted into a repository.
type Wish struct {
	ID        string    `json:"id"`
	Image     string    `json:"image"` // scheme://registry/repository:tag[@digest]
	CvmfsRepo string    `json:"cvmfs_repo"`
	ThinImage string    `json:"thin_image,omitempty"` // "" pushes no thin image
	User      string    `json:"user,omitempty"`
	Source    string    `json:"source"` // api, distribution, harbor
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Digest is the manifest digest a registry webhook last announced for the image.
	Digest string `json:"digest,omitempty"`
	// Submission is the wish id (events.Job.WishID) of the last wish.submitted; Published
	// says it was published (it is recorded first, then published, so a retry finishes it).
	Submission string `json:"submission"`
	Published  bool   `json:"published"`
	// WishOptions are the rest of what the wish asks for (multi-arch, outputs, …).
	WishOptions
}

// Image is the state of one image of one repository, as the pipeline's events set it.
type Image struct {
	ID          string    `json:"id"` // the key: the same as its wish's id
	Image       string    `json:"image"`
	CvmfsRepo   string    `json:"cvmfs_repo"`
	State       string    `json:"state"`
	Error       string    `json:"error,omitempty"` // the last error, while failed
	Stage       string    `json:"stage,omitempty"` // the stage that failed
	WishID      string    `json:"wish_id"`         // the submission the state belongs to
	SubmittedAt time.Time `json:"submitted_at"`
	PublicPath  string    `json:"public_path,omitempty"`
	Outputs     []Output  `json:"outputs,omitempty"` // each output the wish asked for
	UpdatedAt   time.Time `json:"updated_at"`
	Event       Event     `json:"event"` // the event that set this state
}

// Event names the pipeline event that set an image's state.
type Event struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
}

// Key is the id of the wish (and the image state) of image in cvmfsRepo: the same wish
// made twice has the same id.
func Key(cvmfsRepo, image string) string {
	h := sha256.Sum256([]byte(cvmfsRepo + "\x00" + image))
	return hex.EncodeToString(h[:12])
}

// stateName is the name an image's state is kept under: the image as wished, but a tag
// pinned to a digest is the tag's (the store publishes it under the tag; the digest is only
// which version).
func stateName(ref imageref.Ref) string {
	if ref.Tag != "" {
		ref.Digest = ""
	}
	return ref.String()
}

// validKey says whether s can be a key (an id from a URL).
func validKey(s string) bool {
	if len(s) != 24 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// records is the front door's view of its two buckets.
type records struct {
	wishes jetstream.KeyValue
	images jetstream.KeyValue
}

// openRecords creates (or updates) the buckets.
func openRecords(ctx context.Context, js jetstream.JetStream, replicas int) (*records, error) {
	replicas = max(replicas, 1)
	w, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: WishesBucket, Description: "flatbed front door: wishes (key = wish id)",
		History: 16, Storage: jetstream.FileStorage, Replicas: replicas, MaxValueSize: 64 << 10,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the %s bucket: %w", WishesBucket, err)
	}
	i, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: ImagesBucket, Description: "flatbed front door: the state of each image, one revision per event (key = wish id)",
		History: ImageHistory, Storage: jetstream.FileStorage, Replicas: replicas, MaxValueSize: 64 << 10,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the %s bucket: %w", ImagesBucket, err)
	}
	return &records{wishes: w, images: i}, nil
}

// errConflict is a compare-and-set that lost: read again and retry.
var errConflict = errors.New("changed meanwhile")

func conflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return true
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// get reads key of kv into v; the revision is 0 when there is none (or it was deleted).
func get(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s from %s: %w", key, kv.Bucket(), err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("reading %s from %s: %w", key, kv.Bucket(), err)
	}
	return e.Revision(), nil
}

// put writes v at key if the key is still at revision rev (0: absent or deleted).
func put(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = kv.Create(ctx, key, b)
	} else {
		_, err = kv.Update(ctx, key, b, rev)
	}
	if conflict(err) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("writing %s to %s: %w", key, kv.Bucket(), err)
	}
	return nil
}

// list reads every live value of kv, in key order.
func list[T any](ctx context.Context, kv jetstream.KeyValue) ([]T, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", kv.Bucket(), err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := []T{}
	for _, k := range keys {
		var v T
		rev, err := get(ctx, kv, k, &v)
		if err != nil {
			return nil, err
		}
		if rev != 0 {
			out = append(out, v)
		}
	}
	return out, nil
}

// history reads every kept state of one image, oldest first.
func (r *records) history(ctx context.Context, key string) ([]Image, error) {
	entries, err := r.images.History(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return []Image{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", key, err)
	}
	out := []Image{}
	for _, e := range entries {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		var img Image
		if err := json.Unmarshal(e.Value(), &img); err != nil {
			return nil, fmt.Errorf("reading the history of %s: %w", key, err)
		}
		out = append(out, img)
	}
	return out, nil
}
