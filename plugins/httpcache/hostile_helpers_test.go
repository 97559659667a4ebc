package httpcache_test

import (
	"net/http"

	"querycache.dev/plugins/httpcache"
)

func httpcachePerUser(f func(*http.Request) (string, bool)) httpcache.Option {
	return httpcache.PerUser(f)
}
