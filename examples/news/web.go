package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"querycache.dev/plugins/httpcache"
)

// The demo's web pages (-serve): the homepage, an article, and a form that
// changes an article's title through GORM. Every page is behind the page
// cache (site-wide middleware): a page is rendered once, served from the
// cache until a write changes something it showed, and then re-rendered
// at once, with no TTL wait. The X-Querycache response header says hit or
// miss.
var pageTemplates = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html><head><meta charset="utf-8"><title>{{.}}</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}li{margin:.3em 0}</style></head><body>{{end}}
{{define "home"}}{{template "head" "querycache news"}}<h1>News</h1>
<ol id="articles">{{range .}}<li><a class="title" data-id="{{.ID}}" href="/articles/{{.ID}}">{{.Title}}</a></li>{{end}}</ol>
</body></html>{{end}}
{{define "article"}}{{template "head" .Title}}<h1 id="title">{{.Title}}</h1><p>{{.Body}}</p>
<p><a href="/articles/{{.ID}}/edit">Edit</a> · <a href="/">Home</a></p></body></html>{{end}}
{{define "edit"}}{{template "head" "Edit"}}<h1>Edit article {{.Article.ID}}</h1>
<form id="edit" method="post" action="/articles/{{.Article.ID}}">
<input name="title" value="{{.Title}}" size="60"> <button>Save</button></form>
{{if .Submit}}<script>document.getElementById("edit").submit()</script>{{end}}
</body></html>{{end}}`))

// webHandler is the demo's site: its pages behind the page cache.
func (in *instance) webHandler() (http.Handler, error) {
	pages, err := httpcache.New(in.cache, httpcache.TTL(10*time.Minute))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		// The request's context: the page cache learns from it what the
		// page read, and a write to any of it re-renders the page.
		err := in.db.WithContext(r.Context()).Scopes(homepageScope).
			Where("published = ?", true).Order("id desc").Limit(20).Find(&as).Error
		render(w, "home", as, err)
	})
	article := func(r *http.Request) (Article, error) {
		var a Article
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil {
			return a, err
		}
		err = in.db.WithContext(r.Context()).Scopes(articleScope).First(&a, id).Error
		return a, err
	}
	mux.HandleFunc("GET /articles/{id}", func(w http.ResponseWriter, r *http.Request) {
		a, err := article(r)
		render(w, "article", a, err)
	})
	mux.HandleFunc("GET /articles/{id}/edit", func(w http.ResponseWriter, r *http.Request) {
		a, err := article(r)
		// ?title=...&submit=1 fills the form and submits it from the
		// page's script: the browser test changes a title that way.
		data := struct {
			Article Article
			Title   string
			Submit  bool
		}{a, a.Title, r.URL.Query().Get("submit") == "1"}
		if t := r.URL.Query().Get("title"); t != "" {
			data.Title = t
		}
		render(w, "edit", data, err)
	})
	mux.HandleFunc("POST /articles/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		title := r.PostFormValue("title")
		if err != nil || title == "" {
			http.Error(w, "a title is needed", http.StatusBadRequest)
			return
		}
		// An UPDATE through GORM: after it commits, every cached query
		// that read this row, and every page built from them, is stale.
		res := in.db.WithContext(r.Context()).Model(&Article{ID: uint(id)}).Update("title", title)
		if res.Error != nil {
			http.Error(w, res.Error.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	return pages.Middleware()(mux), nil
}

func render(w http.ResponseWriter, name string, data any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplates.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// serve runs the demo's site on addr until SIGINT or SIGTERM.
func serve(out io.Writer, in *instance, addr string) error {
	h, err := in.webHandler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "querycache news demo on http://%s/ (pages behind the page cache; Ctrl-C stops)\n", ln.Addr())
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
