package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrNoDataDir: no volume of the set holds a MySQL/MariaDB datadir (or
	// not at the tagged path).
	ErrNoDataDir = errors.New("no datadir")
	// ErrAmbiguous: more than one place fits; the caller must name one.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrBadPath: a relative path that is absolute or leaves its volume.
	ErrBadPath = errors.New("bad relative path")
)

// maxDataDirDepth bounds the search below each mount root.
const maxDataDirDepth = 4

// CleanRelative checks a path relative to a volume's root ("" and "." mean
// the root itself) and returns it cleaned.
func CleanRelative(rel string) (string, error) {
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("%q is absolute; want a path relative to the volume's root: %w", rel, ErrBadPath)
	}
	c := filepath.Clean(rel)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q leaves the volume: %w", rel, ErrBadPath)
	}
	return c, nil
}

// Locate returns the paths, one per mounted volume, where rel exists.
func (s *MountedSet) Locate(rel string) ([]string, error) {
	c, err := CleanRelative(rel)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range s.Mounts {
		p := filepath.Join(m.Path, c)
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// FindDataDir returns the datadir: rel (relative to its volume's root, as
// tagged at freeze time) when given, else the one directory on the set's
// volumes that looks like a datadir (ibdata1, mysql.ibd or the mysql schema's
// grant tables). More than one candidate is ErrAmbiguous.
func (s *MountedSet) FindDataDir(rel string) (string, error) {
	var found []string
	if rel != "" {
		paths, err := s.Locate(rel)
		if err != nil {
			return "", err
		}
		for _, p := range paths {
			if isDataDir(p) {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			return "", fmt.Errorf("no datadir at %q on any volume of the set: %w", rel, ErrNoDataDir)
		}
	} else {
		for _, m := range s.Mounts {
			found = append(found, findDataDirs(m.Path, 0)...)
		}
		if len(found) == 0 {
			return "", fmt.Errorf("no datadir (ibdata1, mysql.ibd or mysql/) within %d levels of any volume's root: %w", maxDataDirDepth, ErrNoDataDir)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("datadirs at %s; name one with --datadir-relative: %w", strings.Join(found, ", "), ErrAmbiguous)
	}
	return found[0], nil
}

func isDataDir(dir string) bool {
	for _, marker := range []string{"ibdata1", "mysql.ibd", "mysql/user.frm", "mysql/global_priv.frm", "mysql/user.MYD"} {
		if st, err := os.Stat(filepath.Join(dir, marker)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

func findDataDirs(dir string, depth int) []string {
	if isDataDir(dir) {
		return []string{dir} // its subdirectories are schemas
	}
	if depth >= maxDataDirDepth {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "lost+found" {
			out = append(out, findDataDirs(filepath.Join(dir, e.Name()), depth+1)...)
		}
	}
	return out
}
