package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"flatbed.dev/events"
)

func TestLifecycleEventsValidate(t *testing.T) {
	hex := strings.Repeat("a", 64)
	for name, tc := range map[string]struct {
		typ  string
		data any
		ok   bool
	}{
		"deleted":                {events.ImageDeletedType, events.ImageDeleted{CvmfsRepo: "unpacked.example.org", Name: "r.example/x:1", Removed: []string{"r.example/x:1", ".metadata/r.example/x:1"}, PodmanEntry: true}, true},
		"deleted by digest":      {events.ImageDeletedType, events.ImageDeleted{CvmfsRepo: "u.example/sub", Name: "r.example/x@sha256:" + hex, Removed: []string{}}, true},
		"deleted escaping":       {events.ImageDeletedType, events.ImageDeleted{CvmfsRepo: "u.example", Name: "../x:1", Removed: []string{}}, false},
		"deleted other path":     {events.ImageDeletedType, events.ImageDeleted{CvmfsRepo: "u.example", Name: "r.example/x:1", Removed: []string{".flat/aa/" + hex}}, false},
		"deleted bad repo":       {events.ImageDeletedType, events.ImageDeleted{CvmfsRepo: "/etc", Name: "r.example/x:1", Removed: []string{}}, false},
		"collected":              {events.StoreCollectedType, events.StoreCollected{CvmfsRepo: "u.example", Removed: []string{".layers/aa/" + hex, ".flat/aa/" + hex}, RemovedCount: 2, KeptCount: 1, GraceDays: 3}, true},
		"collected nothing":      {events.StoreCollectedType, events.StoreCollected{CvmfsRepo: "u.example", Removed: []string{}}, true},
		"collected public path":  {events.StoreCollectedType, events.StoreCollected{CvmfsRepo: "u.example", Removed: []string{"r.example/x:1"}, RemovedCount: 1}, false},
		"collected escaping":     {events.StoreCollectedType, events.StoreCollected{CvmfsRepo: "u.example", Removed: []string{".layers/../" + hex}, RemovedCount: 1}, false},
		"collected count short":  {events.StoreCollectedType, events.StoreCollected{CvmfsRepo: "u.example", Removed: []string{".layers/aa/" + hex}, RemovedCount: 0}, false},
		"collected negative":     {events.StoreCollectedType, events.StoreCollected{CvmfsRepo: "u.example", Removed: []string{}, GraceDays: -1}, false},
		"collected missing repo": {events.StoreCollectedType, events.StoreCollected{Removed: []string{}}, false},
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := json.Marshal(tc.data)
			_, err := events.Check(tc.typ, b)
			if tc.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, events.ErrInvalid) {
				t.Errorf("accepted (%v)", err)
			}
		})
	}
}
