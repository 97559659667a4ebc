package fragment_test

import (
	"html/template"
	"runtime"
)

func runtimeGosched() { runtime.Gosched() }

// userTmpl is a template set defining name as the sidebar's user heading.
func userTmpl(name string) *template.Template {
	return template.Must(template.New("set").Parse(`{{define "` + name + `"}}<h2>{{.User.Name}}</h2>{{end}}`))
}
