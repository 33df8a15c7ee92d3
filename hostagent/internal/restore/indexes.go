package restore

import (
	"os"
	"path/filepath"
	"strings"
)

// maxIndexDepth bounds the search for log indexes below each mount root.
const maxIndexDepth = 3

// RewriteLogIndexes runs RewriteIndex on every binary-log or relay-log
// index of the set (a file <base>.index whose entries are all <base>.NNNNNN)
// within maxIndexDepth levels of a volume's root, and returns the ones it
// changed. A set mounted where the source had it changes nothing; mounted
// elsewhere, its indexes would otherwise name the source's paths, which are
// another server's files or nothing.
func (s *MountedSet) RewriteLogIndexes() ([]string, error) {
	var changed []string
	for _, m := range s.Mounts {
		for _, idx := range findIndexes(m.Path, 0) {
			ok, err := RewriteIndex(strings.TrimSuffix(idx, ".index"))
			if err != nil {
				return changed, err
			}
			if ok {
				changed = append(changed, idx)
			}
		}
	}
	return changed, nil
}

func findIndexes(dir string, depth int) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir() && depth < maxIndexDepth && e.Name() != "lost+found":
			out = append(out, findIndexes(p, depth+1)...)
		case e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".index") && isLogIndex(p):
			out = append(out, p)
		}
	}
	return out
}

// isLogIndex: every entry is <base>.NNNNNN for the index's own base name.
func isLogIndex(path string) bool {
	names, err := readIndex(path)
	if err != nil || len(names) == 0 {
		return false
	}
	base := strings.TrimSuffix(filepath.Base(path), ".index")
	for _, n := range names {
		m := binlogName.FindStringSubmatch(filepath.Base(n))
		if m == nil || m[1] != base {
			return false
		}
	}
	return true
}
