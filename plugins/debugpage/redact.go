package debugpage

import "regexp"

// credentials in URLs and key=value DSNs an error text might quote.
var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^\s,;)]+)`)
)

// redactError hides passwords an error text may quote (a store's URL, a
// DSN).
func redactError(s string) string {
	if s == "" {
		return s
	}
	s = urlPassword.ReplaceAllString(s, "${1}***@")
	return kvPassword.ReplaceAllString(s, "${1}***")
}
