package fragment_test

import (
	"context"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/fragment"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type Article struct {
	ID    uint
	Title string
}

// A page whose "latest" fragment lists articles: rendered once, served
// from the cache, and rendered again after a write to the articles table.
func Example() {
	dir, _ := os.MkdirTemp("", "fragment-example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{Title: "Hello <world>"})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache))

	frags, _ := fragment.New(cache.KV(), fragment.Options{})
	page := template.Must(template.New("page").Funcs(frags.FuncMap()).Parse(`
{{- define "page"}}<body>{{fragment .Ctx "latest" .Limit}}</body>{{end}}
{{- define "latest"}}<ul>{{range .}}<li>{{.Title}}</li>{{end}}</ul>{{end}}`))

	loads := 0
	_ = frags.Register("latest", page, func(ctx context.Context, args ...any) (any, error) {
		loads++
		var list []Article
		// ctx carries the fragment's capture: this query's tables are
		// what the fragment depends on.
		err := db.WithContext(ctx).Scopes(gormcache.Cacheable()).Order("id desc").Limit(args[0].(int)).Find(&list).Error
		return list, err
	})

	render := func() {
		var b strings.Builder
		if err := page.ExecuteTemplate(&b, "page", map[string]any{"Ctx": context.Background(), "Limit": 5}); err != nil {
			panic(err)
		}
		fmt.Println(b.String(), "loads:", loads)
	}
	render()
	render()                               // served from the cache
	db.Create(&Article{Title: "Breaking"}) // invalidates the fragment after commit
	render()
	// Output:
	// <body><ul><li>Hello &lt;world&gt;</li></ul></body> loads: 1
	// <body><ul><li>Hello &lt;world&gt;</li></ul></body> loads: 1
	// <body><ul><li>Breaking</li><li>Hello &lt;world&gt;</li></ul></body> loads: 2
}
