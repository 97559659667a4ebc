package debugpage_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"strings"

	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Mount the debug page next to net/http/pprof, on an admin listener.
func Example() {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	plugin := gormcache.New(cache) // then db.Use(plugin) on your *gorm.DB

	admin := http.NewServeMux()
	admin.HandleFunc("/debug/pprof/", pprof.Index)
	admin.Handle("/debug/querycache/", debugpage.Handler(cache, plugin))

	srv := httptest.NewServer(admin) // in a service: http.ListenAndServe("127.0.0.1:6060", admin)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/debug/querycache/?format=json")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Println(res.Header.Get("Content-Type"), strings.Contains(string(body), `"hit_ratio"`))
	// Output: application/json; charset=utf-8 true
}
