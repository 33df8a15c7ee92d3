package contract

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TagRestore carries, on every snapshot of a set, the source server's
// settings a restore (hostagent verify, a clone) must start it with: the
// RestoreInfo of the FreezeReport with every path made relative to the
// frozen mount holding it, in one tag value (docs/architecture.md#wire-contract):
//
//	page=16384;lctn=0;datadir=mysql;binlog=mysql-bin;mount=/var/lib;binlog-mount=/var/lib/mysql-binlog
//
// Fields are key=value, separated by ';', in a fixed order, each present only
// when known. In values '%', ';', '=', ',' and control characters are
// written %XX (so innodb_data_file_path's ';' reads back). The keys:
//
//	page          innodb_page_size
//	lctn          lower_case_table_names
//	datadir       datadir, relative to its mount ("." for the mount itself)
//	binlog        log_bin_basename, relative to its mount
//	logdir        innodb_log_group_home_dir, relative to its mount (when not the datadir)
//	datafile      innodb_data_file_path (when not the default)
//	mount         the mount holding the datadir: restore the snapshot whose
//	              quiesce:mounts lists it there
//	binlog-mount  the mount holding the binlog, when not mount
//	logdir-mount  the mount holding the redo log, when not mount
//	unmapped      settings whose path is on no frozen mount (so not in the set)
//	cut           fields left out to fit EC2's 256 characters, lowest
//	              priority first (the mounts go first); the FreezeReport and
//	              the run's result JSON have them in full
const TagRestore = "quiesce:restore"

// Keys of the TagRestore value, in the order they are written, which is
// also their priority when the value must be cut (the last go first).
const (
	RestoreKeyPageSize    = "page"
	RestoreKeyLCTN        = "lctn"
	RestoreKeyDataDir     = "datadir"
	RestoreKeyBinlog      = "binlog"
	RestoreKeyLogDir      = "logdir"
	RestoreKeyDataFile    = "datafile"
	RestoreKeyMount       = "mount"
	RestoreKeyBinlogMount = "binlog-mount"
	RestoreKeyLogDirMount = "logdir-mount"
	RestoreKeyUnmapped    = "unmapped"
	RestoreKeyCut         = "cut"
)

var restoreKeyOrder = []string{
	RestoreKeyPageSize, RestoreKeyLCTN, RestoreKeyDataDir, RestoreKeyBinlog, RestoreKeyLogDir,
	RestoreKeyDataFile, RestoreKeyMount, RestoreKeyBinlogMount, RestoreKeyLogDirMount,
}

// RestoreTag is the parsed TagRestore value. Paths are relative to the
// volume (mount) holding them, what hostagent verify's --datadir-relative,
// --binlog-basename and --innodb-log-group-home-dir take.
type RestoreTag struct {
	PageSize            uint64
	LowerCaseTableNames *int
	DataDir             string
	BinlogBasename      string
	LogGroupHomeDir     string
	DataFilePath        string
	DataDirMount        string
	BinlogMount         string
	LogGroupHomeMount   string
	// Unmapped names the settings (RestoreKey*) whose path lay on no mount
	// of the set; Cut the fields left out to fit one tag value.
	Unmapped []string
	Cut      []string
}

// NewRestoreTag places ri's paths on the frozen mounts. nil ri gives the
// zero RestoreTag (Encode returns "").
func NewRestoreTag(ri *RestoreInfo, mounts []MountReport) RestoreTag {
	var rt RestoreTag
	if ri == nil {
		return rt
	}
	rt.PageSize, rt.LowerCaseTableNames, rt.DataFilePath = ri.InnoDBPageSize, ri.LowerCaseTableNames, ri.InnoDBDataFilePath
	place := func(key, p string) (mount, rel string) {
		if p == "" {
			return "", ""
		}
		m, rel, ok := RelativeTo(mounts, path.Clean(p))
		if !ok {
			rt.Unmapped = append(rt.Unmapped, key)
			return "", ""
		}
		return strings.TrimSuffix(m.Path, "/"), rel
	}
	rt.DataDirMount, rt.DataDir = place(RestoreKeyDataDir, ri.DataDir)
	var binlogMount, logMount string
	binlogMount, rt.BinlogBasename = place(RestoreKeyBinlog, ri.LogBinBasename)
	logDir := ri.InnoDBLogGroupHomeDir
	if logDir != "" && !path.IsAbs(logDir) && ri.DataDir != "" {
		logDir = path.Join(ri.DataDir, logDir) // relative to the datadir, as the server reads it
	}
	logMount, rt.LogGroupHomeDir = place(RestoreKeyLogDir, logDir)
	if binlogMount != rt.DataDirMount {
		rt.BinlogMount = binlogMount
	}
	if logMount != rt.DataDirMount {
		rt.LogGroupHomeMount = logMount
	}
	return rt
}

func (rt RestoreTag) fields() map[string]string {
	f := map[string]string{}
	for k, p := range rt.pathFields() {
		f[k] = *p
	}
	if rt.PageSize > 0 {
		f[RestoreKeyPageSize] = strconv.FormatUint(rt.PageSize, 10)
	}
	if rt.LowerCaseTableNames != nil {
		f[RestoreKeyLCTN] = strconv.Itoa(*rt.LowerCaseTableNames)
	}
	return f
}

// pathFields is the one mapping between the tag's path keys and the
// fields they fill, for Encode and ParseRestoreTag alike.
func (rt *RestoreTag) pathFields() map[string]*string {
	return map[string]*string{
		RestoreKeyDataDir: &rt.DataDir, RestoreKeyBinlog: &rt.BinlogBasename,
		RestoreKeyLogDir: &rt.LogGroupHomeDir, RestoreKeyDataFile: &rt.DataFilePath,
		RestoreKeyMount: &rt.DataDirMount, RestoreKeyBinlogMount: &rt.BinlogMount,
		RestoreKeyLogDirMount: &rt.LogGroupHomeMount,
	}
}

// Encode renders rt within MaxTagValueLen characters, cutting whole fields
// from the lowest priority up and listing them in cut. "" when nothing is
// known.
func (rt RestoreTag) Encode() string {
	f := rt.fields()
	var keep []string
	for _, k := range restoreKeyOrder {
		if f[k] != "" {
			keep = append(keep, k)
		}
	}
	cut := append([]string(nil), rt.Cut...)
	for {
		v := encodeRestore(keep, f, rt.Unmapped, cut)
		if utf8.RuneCountInString(v) <= MaxTagValueLen || len(keep) == 0 {
			return v
		}
		cut = append(cut, keep[len(keep)-1])
		keep = keep[:len(keep)-1]
	}
}

func encodeRestore(keep []string, f map[string]string, unmapped, cut []string) string {
	var parts []string
	for _, k := range keep {
		parts = append(parts, k+"="+escapeRestore(f[k]))
	}
	if len(unmapped) > 0 {
		parts = append(parts, RestoreKeyUnmapped+"="+strings.Join(unmapped, ","))
	}
	if len(cut) > 0 {
		parts = append(parts, RestoreKeyCut+"="+strings.Join(cut, ","))
	}
	return strings.Join(parts, ";")
}

func escapeRestore(v string) string {
	var b strings.Builder
	for _, r := range v {
		if r == '%' || r == ';' || r == '=' || r == ',' || r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "%%%02X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unescapeRestore(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", fmt.Errorf("%q: truncated %%XX escape", v)
		}
		n, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("%q: bad %%XX escape", v)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// ParseRestoreTag reads a TagRestore value. Unknown keys are ignored (a
// later writer may add some); a malformed field is an error naming it.
func ParseRestoreTag(v string) (RestoreTag, error) {
	var rt RestoreTag
	if v == "" {
		return rt, nil
	}
	for _, field := range strings.Split(v, ";") {
		k, raw, ok := strings.Cut(field, "=")
		if !ok {
			return RestoreTag{}, fmt.Errorf("%s: field %q is not key=value", TagRestore, field)
		}
		val, err := unescapeRestore(raw)
		if err != nil {
			return RestoreTag{}, fmt.Errorf("%s %s: %w", TagRestore, k, err)
		}
		if err := rt.set(k, val); err != nil {
			return RestoreTag{}, fmt.Errorf("%s %s=%q: %w", TagRestore, k, val, err)
		}
	}
	return rt, nil
}

func (rt *RestoreTag) set(k, val string) error {
	switch k {
	case RestoreKeyPageSize:
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return fmt.Errorf("not a page size")
		}
		rt.PageSize = n
	case RestoreKeyLCTN:
		n, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		rt.LowerCaseTableNames = &n
	case RestoreKeyUnmapped:
		rt.Unmapped = strings.Split(val, ",")
	case RestoreKeyCut:
		rt.Cut = strings.Split(val, ",")
	default:
		if p, ok := rt.pathFields()[k]; ok {
			*p = val
		}
	}
	return nil
}
