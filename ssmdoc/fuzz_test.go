package ssmdoc_test

import (
	"strings"
	"testing"

	"github.com/quiesce/quiesce/ssmdoc"
)

// FuzzAcceptedValuesAreInert: whatever a pattern accepts must be inert to a
// shell and to hostagent's flag parser even if it were ever used unquoted:
// only [A-Za-z0-9._,/+:-], no path component starting with '.' or '-', no
// value starting with '-'. `go test` runs the seeds; `go test -fuzz
// FuzzAcceptedValuesAreInert ./ssmdoc` explores further.
func FuzzAcceptedValuesAreInert(f *testing.F) {
	for _, s := range injections {
		f.Add(s)
	}
	for _, s := range []string{"/var/lib/mysql", "/a,/b", "5s", "1m30s", "r-1", "v1.2.3+b", "eu-west-1", "quiesce/rel"} {
		f.Add(s)
	}
	docs := []*ssmdoc.Document{}
	for _, raw := range [][]byte{ssmdoc.QuiesceDocument(), ssmdoc.InstallDocument()} {
		d, err := ssmdoc.Load(raw)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, d)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, d := range docs {
			for _, name := range d.ParameterNames() {
				if d.Validate(name, v) != nil {
					continue
				}
				if strings.HasPrefix(v, "-") {
					t.Errorf("%s accepts %q, which starts with '-'", name, v)
				}
				for _, r := range v {
					if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._,/+:-", r)) {
						t.Errorf("%s accepts %q, which contains %q", name, v, r)
					}
				}
				for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '/' || r == ',' }) {
					if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "-") {
						t.Errorf("%s accepts %q: component %q", name, v, part)
					}
				}
			}
		}
	})
}
