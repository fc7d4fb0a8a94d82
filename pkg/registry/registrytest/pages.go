package registrytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// PageTags answers the tag lists of next in pages of at most size tags, as the distribution
// spec pages them: sorted, from the first tag after ?last=, at most ?n= of them, and a Link
// header (rel="next") to the next page while there is one. It asks next for the whole list
// (no n, no last), so next may be a registry that pages by itself or one that does not:
// docker-registry 2.8 ignores ?n= on tag lists, and go-containerregistry's in-memory
// registry sends no Link header.
func PageTags(size int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/tags/list") {
				next.ServeHTTP(w, r)
				return
			}
			whole := r.Clone(r.Context())
			whole.URL.RawQuery = ""
			whole.RequestURI = whole.URL.RequestURI()
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, whole)
			var list struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil {
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			tags := slices.Sorted(slices.Values(list.Tags))
			if last := r.URL.Query().Get("last"); last != "" {
				i, _ := slices.BinarySearch(tags, last)
				for i < len(tags) && tags[i] <= last {
					i++
				}
				tags = tags[i:]
			}
			n := size
			if asked, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && asked > 0 && asked < n {
				n = asked
			}
			if len(tags) > n {
				tags = tags[:n]
				q := url.Values{"n": {strconv.Itoa(n)}, "last": {tags[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
			}
			list.Tags = tags
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(list)
		})
	}
}
