package frontdoor

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// The status page: server-rendered HTML of the wishes and the images' states, kept live by
// server-sent events that carry the re-rendered tables (a few lines of plain JavaScript, no
// framework); without JavaScript the page refreshes itself every few seconds. A browser signs
// in at /login with the token, which is then kept in an HttpOnly, SameSite=Strict cookie that
// opens the status page and its events only (GET), never the API.

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>flatbed status</title>
<noscript><meta http-equiv="refresh" content="5"></noscript>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { text-align: left; padding: .25em .75em; border-bottom: 1px solid #ddd; vertical-align: top; }
td.error { color: #a00; max-width: 40em; }
.state-done { color: #070; } .state-failed { color: #a00; font-weight: bold; }
.state-running { color: #06c; } .state-pending { color: #777; }
</style>
</head>
<body>
<h1>flatbed</h1>
<p id="live">updated {{.Now}}</p>
<div id="tables">{{.Tables}}</div>
<script>
(function () {
  if (!window.EventSource) { setTimeout(function () { location.reload(); }, 5000); return; }
  var es = new EventSource("/status/events");
  es.addEventListener("tables", function (e) {
    document.getElementById("tables").innerHTML = e.data;
    document.getElementById("live").textContent = "updated " + new Date().toISOString();
  });
})();
</script>
</body>
</html>
`))

var tablesTmpl = template.Must(template.New("tables").Parse(`<h2>Wishes</h2>
<table id="wishes">
<tr><th>wish</th><th>image</th><th>repository</th><th>source</th><th>state</th></tr>
{{range .Wishes}}<tr id="wish-{{.ID}}" data-state="{{.StateName}}"><td>{{.ID}}</td><td>{{.Image}}</td><td>{{.CvmfsRepo}}</td><td>{{.Source}}</td><td class="state state-{{.StateName}}">{{.StateName}}</td></tr>
{{else}}<tr><td colspan="5">no wishes</td></tr>
{{end}}</table>
<h2>Images</h2>
<table id="images">
<tr><th>image</th><th>repository</th><th>state</th><th>outputs</th><th>since</th><th>error</th></tr>
{{range .Images}}<tr id="image-{{.ID}}" data-state="{{.State}}"><td>{{.Image}}</td><td>{{.CvmfsRepo}}</td><td class="state state-{{.State}}">{{.State}}</td><td class="outputs">{{range .Outputs}}<span class="output output-{{.State}}" title="{{.Result}}">{{.Name}}: {{.State}}</span> {{end}}</td><td>{{.UpdatedAt.Format "2006-01-02 15:04:05Z07:00"}}</td><td class="error">{{if .Stage}}{{.Stage}}: {{end}}{{.Error}}</td></tr>
{{else}}<tr><td colspan="6">no images</td></tr>
{{end}}</table>
`))

// pageWish is a wish row of the status page.
type pageWish struct {
	WishView
	StateName string
}

// renderTables renders the two tables from the buckets.
func (s *Service) renderTables(ctx context.Context) (template.HTML, error) {
	wishes, err := list[Wish](ctx, s.rec.wishes)
	if err != nil {
		return "", err
	}
	imgs, err := list[Image](ctx, s.rec.images)
	if err != nil {
		return "", err
	}
	byID := map[string]Image{}
	for _, i := range imgs {
		byID[i.ID] = i
	}
	var rows []pageWish
	for _, w := range wishes {
		row := pageWish{WishView: WishView{Wish: w}, StateName: StatePending}
		if i, ok := byID[w.ID]; ok {
			row.State, row.StateName = &i, i.State
		}
		rows = append(rows, row)
	}
	var b bytes.Buffer
	if err := tablesTmpl.Execute(&b, map[string]any{"Wishes": rows, "Images": imgs}); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil //nolint:gosec // rendered by html/template
}

func (s *Service) statusPage(w http.ResponseWriter, r *http.Request) {
	tables, err := s.renderTables(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
	_ = pageTmpl.Execute(w, map[string]any{"Now": time.Now().UTC().Format(time.RFC3339), "Tables": tables})
}

// statusPoll is how often the live updates look at the buckets for a change made by another
// replica (changes made here wake them at once).
var statusPoll = time.Second

// statusEvents streams the tables as server-sent events ("tables"), once at the start and
// again whenever they change, until the client goes.
func (s *Service) statusEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "unavailable", "streaming is not supported here")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	var last template.HTML
	tick := time.NewTicker(statusPoll)
	defer tick.Stop()
	for {
		wake := s.changes()
		tables, err := s.renderTables(r.Context())
		if err == nil && tables != last {
			last = tables
			var b strings.Builder
			b.WriteString("event: tables\n")
			for _, line := range strings.Split(string(tables), "\n") {
				fmt.Fprintf(&b, "data: %s\n", line)
			}
			b.WriteString("\n")
			if _, err := w.Write([]byte(b.String())); err != nil {
				return
			}
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-tick.C:
		}
	}
}

var loginTmpl = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>flatbed: sign in</title></head>
<body>
<h1>flatbed</h1>
{{if .}}<p id="problem">{{.}}</p>{{end}}
<form method="post" action="/login">
<label>Token of the front door (its --token-file) <input type="password" name="token" id="token" autocomplete="current-password"></label>
<button type="submit" id="signin">Sign in</button>
</form>
</body>
</html>
`))

func (s *Service) loginForm(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(w, "")
}

// login checks the token from the form and keeps it in a cookie for the status page.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_body", "want a form with the token")
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if subtle.ConstantTimeCompare([]byte(tok), s.Token) != 1 {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginTmpl.Execute(w, "That is not the front door's token.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok, Path: "/status", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: 7 * 24 * 3600})
	http.Redirect(w, r, "/status", http.StatusSeeOther)
}
