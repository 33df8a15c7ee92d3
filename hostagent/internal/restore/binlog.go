package restore

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// binlogName is a binary log file name: <basename>.<6+ digits>.
var binlogName = regexp.MustCompile(`^(.+)\.[0-9]{6,}$`)

// ValidBinlogFile reports whether name is a bare binlog file name (no directory).
func ValidBinlogFile(name string) bool {
	return !strings.ContainsRune(name, '/') && binlogName.MatchString(name)
}

// FindBinlogBase returns the absolute log-bin basename on the mounted set
// (e.g. <mnt>/vol-1/mysql/binlog), or "" when there is no binary log.
// rel is the tagged basename relative to its volume's root (as
// --datadir-relative is): the volume holding rel.index, else the one holding
// its directory. Without it, the tagged file's name or the datadir's one
// binlog index decide.
func (s *MountedSet) FindBinlogBase(datadir, rel, file string) (string, error) {
	if rel != "" {
		return s.locateBinlogBase(rel)
	}
	if m := binlogName.FindStringSubmatch(file); m != nil {
		return filepath.Join(datadir, m[1]), nil
	}
	indexes, _ := filepath.Glob(filepath.Join(datadir, "*.index"))
	var bases []string
	for _, idx := range indexes {
		base := strings.TrimSuffix(idx, ".index")
		names, err := readIndex(idx)
		if err != nil || len(names) == 0 || strings.Contains(filepath.Base(base), "relay") {
			continue
		}
		if m := binlogName.FindStringSubmatch(filepath.Base(names[0])); m != nil && m[1] == filepath.Base(base) {
			bases = append(bases, base)
		}
	}
	if len(bases) > 1 {
		return "", fmt.Errorf("binlog indexes %s in the datadir; name one with --binlog-basename: %w", strings.Join(bases, ", "), ErrAmbiguous)
	}
	if len(bases) == 1 {
		return bases[0], nil
	}
	return "", nil
}

func (s *MountedSet) locateBinlogBase(rel string) (string, error) {
	indexes, err := s.Locate(rel + ".index")
	if err != nil {
		return "", err
	}
	switch len(indexes) {
	case 1:
		return strings.TrimSuffix(indexes[0], ".index"), nil
	case 0:
	default:
		return "", fmt.Errorf("binlog basename %q: indexes %s fit: %w", rel, strings.Join(indexes, ", "), ErrAmbiguous)
	}
	dirs, err := s.Locate(filepath.Dir(rel))
	if err != nil {
		return "", err
	}
	switch len(dirs) {
	case 0:
		return "", fmt.Errorf("binlog basename %q: its directory is on no volume of the set: %w", rel, ErrNoDataDir)
	case 1:
		return filepath.Join(dirs[0], filepath.Base(rel)), nil
	}
	return "", fmt.Errorf("binlog basename %q: no %s.index, and directories %s fit: %w", rel, filepath.Base(rel), strings.Join(dirs, ", "), ErrAmbiguous)
}

func readIndex(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

// CheckBinlog compares the restored binary log with the tagged position
// before any server opens it (a server appends to and rotates the log): the
// tagged file must exist, be the last one in the index, and its size must
// equal the position — under a lock nothing is written past it. It returns
// the comparison and the problems found.
func CheckBinlog(basename, file string, pos uint64) (contract.BinlogCheck, []string) {
	bc := contract.BinlogCheck{File: file, Pos: pos}
	if basename == "" {
		return bc, []string{fmt.Sprintf("binlog %s: no binary log index on the restored volumes", file)}
	}
	path := filepath.Join(filepath.Dir(basename), file)
	st, err := os.Stat(path)
	if err != nil {
		return bc, []string{fmt.Sprintf("binlog %s missing from the restored set: %v", file, err)}
	}
	bc.Size = st.Size()
	bc.Match = uint64(st.Size()) == pos
	var problems []string
	if !bc.Match {
		problems = append(problems, fmt.Sprintf("binlog %s is %d bytes on the restored set, tagged position is %d", file, st.Size(), pos))
	}
	names, err := readIndex(basename + ".index")
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("binlog index: %v", err))
	case len(names) == 0:
		problems = append(problems, fmt.Sprintf("binlog index %s.index is empty", basename))
	case filepath.Base(names[len(names)-1]) != file:
		bc.Match = false
		problems = append(problems, fmt.Sprintf("tagged binlog %s is not the last in the index (%s): the log moved on after the position was read",
			file, filepath.Base(names[len(names)-1])))
	}
	return bc, problems
}

// RewriteIndex points absolute entries of basename's index at the restored
// copies (same file names, in basename's directory), keeping relative ones:
// the source's absolute paths do not exist here, or worse, are the live
// server's files. It returns whether the file changed. Owner and mode are kept.
func RewriteIndex(basename string) (bool, error) {
	idx := basename + ".index"
	data, err := os.ReadFile(idx)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("binlog index: %w", err)
	}
	dir := filepath.Dir(basename)
	var out strings.Builder
	changed := false
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		entry := strings.TrimSpace(line)
		if filepath.IsAbs(entry) && filepath.Dir(entry) != dir {
			entry = filepath.Join(dir, filepath.Base(entry))
			changed = true
		}
		if entry != "" {
			out.WriteString(entry + "\n")
		}
	}
	if !changed {
		return false, nil
	}
	return true, replaceFile(idx, []byte(out.String()))
}

// replaceFile writes data to path atomically, keeping path's owner and mode.
func replaceFile(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".quiesce-tmp"
	if err := os.WriteFile(tmp, data, st.Mode().Perm()); err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	if uid, gid, ok := ownerOf(st); ok {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("rewrite %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	return nil
}
