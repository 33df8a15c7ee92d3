// Package event parses and validates the Lambda's input: the event README's
// "Run it by hand" shows (manual invoke, SAM test event, EventBridge Scheduler input) or a bare
// scheduled event / {} that falls back to the QUIESCE_* environment defaults.
// Every validation error names the field and the bad value, and happens
// before anything is frozen.
package event

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quiesce/quiesce/contract"
)

// Event is the JSON input.
type Event struct {
	// Action is "snapshot" (the default) or "verify" (restore and check
	// snapshot sets on a verifier instance; its options are in Verify and
	// are validated by the verify action itself).
	Action string          `json:"action,omitempty"`
	Verify json.RawMessage `json:"verify,omitempty"`
	// Clone holds the options of "action":"clone" (validated by the clone
	// action: make a replica from a snapshot set on a target instance).
	Clone          json.RawMessage   `json:"clone,omitempty"`
	RunID          string            `json:"run_id,omitempty"`
	Targets        *Targets          `json:"targets,omitempty"`
	Mounts         []string          `json:"mounts,omitempty"`
	MySQL          *MySQL            `json:"mysql,omitempty"`
	FreezeTimeout  string            `json:"freeze_timeout,omitempty"`
	SnapshotTags   map[string]string `json:"snapshot_tags,omitempty"`
	Retention      *Retention        `json:"retention,omitempty"`
	MaxConcurrency *int              `json:"max_concurrency,omitempty"`
	DryRun         bool              `json:"dry_run,omitempty"`
}

// Targets selects instances: IDs and/or tags (all tags must match).
type Targets struct {
	InstanceIDs []string          `json:"instance_ids,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// MySQL options passed to hostagent.
type MySQL struct {
	Lock            string `json:"lock,omitempty"`
	DefaultsFile    string `json:"defaults_file,omitempty"`
	LockWait        string `json:"lock_wait,omitempty"`
	LongQueryLimit  string `json:"long_query_limit,omitempty"`
	KillLongQueries *bool  `json:"kill_long_queries,omitempty"`
}

// Retention policy; a snapshot is kept if any rule keeps it.
type Retention struct {
	KeepLast *int   `json:"keep_last,omitempty"`
	MaxAge   string `json:"max_age,omitempty"`
}

// Config is the validated run configuration.
type Config struct {
	Action string // ActionSnapshot or ActionVerify
	// Verify is the event's raw "verify" object (nil when absent).
	Verify json.RawMessage
	// Clone is the event's raw "clone" object (nil when absent).
	Clone json.RawMessage
	// RunIDGiven: the event named run_id (the verify action then verifies
	// that run's sets instead of the newest unverified ones).
	RunIDGiven  bool
	RunID       string
	Document    string
	Stack       string
	InstanceIDs []string
	TargetTags  map[string]string
	// FreezeRequest is the mounts, lock mode and lock bounds every target's
	// freeze asks for unless the target's tags name its own.
	contract.FreezeRequest
	FreezeTimeout  time.Duration
	SnapshotTags   map[string]string
	KeepLast       int           // 0: no count rule
	MaxAge         time.Duration // 0: no age rule
	MaxConcurrency int
	DryRun         bool
	// Scheduled is true when the input was a bare scheduled event.
	Scheduled bool
}

// Actions.
const (
	ActionSnapshot = "snapshot"
	ActionVerify   = "verify"
	ActionClone    = "clone"
)

// Defaults when neither the event nor the environment says otherwise.
const (
	DefaultDocument       = "Quiesce"
	DefaultFreezeTimeout  = contract.DefaultFreezeTimeout
	DefaultLockWait       = 5 * time.Second
	DefaultLongQueryLimit = 10 * time.Second
	DefaultMaxConcurrency = 10
	MaxMaxConcurrency     = 100
)

// Limits shared with hostagent and derived from EC2's (contract).
const (
	MinFreezeTimeout = contract.MinFreezeTimeout
	MaxFreezeTimeout = contract.MaxFreezeTimeout
	MaxUserTags      = contract.MaxUserTags
	// ReservedTags is how many tags quiesce itself may put on a snapshot.
	ReservedTags = contract.ReservedTags
)

var (
	// Same rule as the SSM document's allowedPattern for one mount.
	mountRe = regexp.MustCompile(`^/[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$`)
	instRe  = regexp.MustCompile(`^(i|mi)-[0-9a-f]{8,17}$`)
	stackRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}$`)
	docRe   = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{3,128}$`)
)

// LockModes accepted by hostagent --mysql-lock and the SSM document.
var LockModes = contract.LockModes()

// ValidationError is a bad event or environment value; it names the field.
// (Its type name is what Lambda reports as errorType.)
type ValidationError struct {
	Field string
	Value string
	Msg   string
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg)
}

func fieldErr(field, value, format string, args ...any) error {
	return &ValidationError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// scheduled is the shape EventBridge rules (aws.events) and the default
// EventBridge Scheduler target input (aws.scheduler) deliver.
type scheduled struct {
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
}

// Parse validates raw input against the environment (getenv) and returns the
// run configuration. now makes generated run IDs (NewRunID) deterministic in tests.
func Parse(raw []byte, getenv func(string) string, now time.Time) (*Config, error) {
	raw = bytes.TrimSpace(raw)
	var ev Event
	cfg := &Config{}
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		cfg.Scheduled = true
	} else {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, &ValidationError{Field: "event", Msg: "not a JSON object: " + err.Error()}
		}
		var sch scheduled
		_ = json.Unmarshal(raw, &sch)
		switch {
		case sch.Source == "aws.events" || sch.Source == "aws.scheduler" || sch.DetailType == "Scheduled Event":
			cfg.Scheduled = true
		case len(probe) == 0:
			cfg.Scheduled = true
		default:
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				return nil, &ValidationError{Field: "event", Msg: jsonFieldError(err).Error()}
			}
		}
	}
	if err := cfg.fill(&ev, getenv, now); err != nil {
		return nil, err
	}
	return cfg, nil
}

func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err
}

// fill validates the event against the environment, field group by field
// group, in the order the event lists them; the first bad value wins.
func (cfg *Config) fill(ev *Event, getenv func(string) string, now time.Time) error {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	if err := cfg.fillIdentity(ev, env, getenv, now); err != nil {
		return err
	}
	for _, fill := range []func(*Event, func(string) string) error{cfg.fillTargets, cfg.fillMounts, cfg.fillMySQL, cfg.fillFreeze, cfg.fillRetention, cfg.fillConcurrency} {
		if err := fill(ev, env); err != nil {
			return err
		}
	}
	cfg.DryRun = ev.DryRun
	return nil
}

// fillIdentity: the SSM document, the stack and the run id.
func (cfg *Config) fillIdentity(ev *Event, env, getenv func(string) string, now time.Time) error {
	cfg.Document = env("QUIESCE_DOCUMENT")
	if cfg.Document == "" {
		cfg.Document = DefaultDocument
	}
	if !docRe.MatchString(cfg.Document) {
		return fieldErr("QUIESCE_DOCUMENT", cfg.Document, "not a valid SSM document name")
	}
	// The stack tag scopes IAM and retention; the template always sets
	// QUIESCE_STACK. Without it, the function's own name is the most
	// specific identity available (unique per account and region).
	cfg.Stack = StackFromEnv(getenv)
	if cfg.Stack == "" {
		return fieldErr("QUIESCE_STACK", "", "required (the stack tag value every snapshot carries; IAM keys on it)")
	}
	if !stackRe.MatchString(cfg.Stack) {
		return fieldErr("QUIESCE_STACK", cfg.Stack, "must be 1-128 characters of letters, digits and ._:/+=@-")
	}

	switch ev.Action {
	case "", ActionSnapshot:
		cfg.Action = ActionSnapshot
		if len(ev.Verify) > 0 {
			return fieldErr("verify", "", "only with \"action\":\"verify\"")
		}
	case ActionVerify:
		cfg.Action, cfg.Verify = ActionVerify, ev.Verify
	case ActionClone:
		cfg.Action, cfg.Clone = ActionClone, ev.Clone
	default:
		return fieldErr("action", ev.Action, "must be snapshot, verify or clone")
	}
	if len(ev.Clone) > 0 && cfg.Action != ActionClone {
		return fieldErr("clone", "", "only with \"action\":\"clone\"")
	}

	// Run ID.
	cfg.RunIDGiven = ev.RunID != ""
	cfg.RunID = ev.RunID
	if cfg.RunID == "" {
		cfg.RunID = NewRunID(now)
	} else if !contract.ValidRunID(cfg.RunID) {
		return fieldErr("run_id", cfg.RunID, "must match %s", contract.RunIDPattern)
	}
	return nil
}

// fillTargets: instance ids and/or tags (all must match).
func (cfg *Config) fillTargets(ev *Event, env func(string) string) error {
	// Targets.
	if ev.Targets != nil {
		cfg.InstanceIDs = ev.Targets.InstanceIDs
		cfg.TargetTags = ev.Targets.Tags
	}
	if len(cfg.InstanceIDs) == 0 && len(cfg.TargetTags) == 0 {
		if k := env("QUIESCE_TARGET_TAG_KEY"); k != "" {
			cfg.TargetTags = map[string]string{k: env("QUIESCE_TARGET_TAG_VALUE")}
		}
	}
	// The clone action names its source and target instances itself.
	if len(cfg.InstanceIDs) == 0 && len(cfg.TargetTags) == 0 && cfg.Action != ActionClone {
		return fieldErr("targets", "", "required: give targets.instance_ids and/or targets.tags (or set QUIESCE_TARGET_TAG_KEY)")
	}
	seen := map[string]bool{}
	for i, id := range cfg.InstanceIDs {
		if !instRe.MatchString(id) {
			return fieldErr(fmt.Sprintf("targets.instance_ids[%d]", i), id, "not an EC2 instance ID (i-0123456789abcdef0)")
		}
		if seen[id] {
			return fieldErr(fmt.Sprintf("targets.instance_ids[%d]", i), id, "listed twice")
		}
		seen[id] = true
	}
	for k, v := range cfg.TargetTags {
		if k == "" || utf8.RuneCountInString(k) > 128 {
			return fieldErr("targets.tags", k, "tag key must be 1-128 characters")
		}
		if utf8.RuneCountInString(v) > 256 {
			return fieldErr("targets.tags."+k, v, "tag value longer than 256 characters")
		}
	}
	return nil
}

// fillMounts: the mounts to freeze, unless instance tags say otherwise.
func (cfg *Config) fillMounts(ev *Event, env func(string) string) error {
	// Mounts.
	cfg.Mounts = ev.Mounts
	if len(cfg.Mounts) == 0 {
		if m := env("QUIESCE_MOUNTS"); m != "" {
			for _, p := range strings.Split(m, ",") {
				if p = strings.TrimSpace(p); p != "" {
					cfg.Mounts = append(cfg.Mounts, p)
				}
			}
		}
	}
	if err := ValidateMounts("mounts", cfg.Mounts); err != nil {
		return err
	}
	return nil
}

// fillMySQL: the options passed to hostagent for the MySQL lock.
func (cfg *Config) fillMySQL(ev *Event, env func(string) string) error {
	// MySQL.
	my := ev.MySQL
	if my == nil {
		my = &MySQL{}
	}
	cfg.MySQLLock = cmp.Or(my.Lock, env("QUIESCE_MYSQL_LOCK"), contract.LockAuto)
	if err := ValidateLock("mysql.lock", cfg.MySQLLock); err != nil {
		return err
	}
	cfg.MySQLDefaultsFile = cmp.Or(my.DefaultsFile, env("QUIESCE_MYSQL_DEFAULTS_FILE"))
	if cfg.MySQLDefaultsFile != "" && !mountRe.MatchString(cfg.MySQLDefaultsFile) {
		return fieldErr("mysql.defaults_file", cfg.MySQLDefaultsFile, "must be an absolute path of letters, digits and ._-")
	}
	var err error
	if cfg.LockWait, err = duration("mysql.lock_wait", my.LockWait, DefaultLockWait, time.Millisecond, 10*time.Minute); err != nil {
		return err
	}
	if cfg.LongQueryLimit, err = duration("mysql.long_query_limit", my.LongQueryLimit, DefaultLongQueryLimit, time.Millisecond, 24*time.Hour); err != nil {
		return err
	}
	if my.KillLongQueries != nil {
		cfg.KillLongQueries = *my.KillLongQueries
	}
	return nil
}

// fillFreeze: the freeze timeout and the user snapshot tags.
func (cfg *Config) fillFreeze(ev *Event, env func(string) string) error {
	// Freeze timeout.
	ft := ev.FreezeTimeout
	var err error
	field := "freeze_timeout"
	if ft == "" {
		ft, field = env("QUIESCE_FREEZE_TIMEOUT"), "QUIESCE_FREEZE_TIMEOUT"
	}
	if cfg.FreezeTimeout, err = duration(field, ft, DefaultFreezeTimeout, MinFreezeTimeout, MaxFreezeTimeout); err != nil {
		return err
	}
	// Snapshot tags.
	if err := ValidateUserTags(ev.SnapshotTags); err != nil {
		return err
	}
	cfg.SnapshotTags = ev.SnapshotTags
	return nil
}

// fillRetention: keep_last and max_age, event before environment.
func (cfg *Config) fillRetention(ev *Event, env func(string) string) error {
	// Retention.
	keep, maxAge := env("QUIESCE_KEEP_LAST"), env("QUIESCE_MAX_AGE")
	keepField, ageField := "QUIESCE_KEEP_LAST", "QUIESCE_MAX_AGE"
	if ev.Retention != nil {
		if ev.Retention.KeepLast != nil {
			keep, keepField = strconv.Itoa(*ev.Retention.KeepLast), "retention.keep_last"
		}
		if ev.Retention.MaxAge != "" {
			maxAge, ageField = ev.Retention.MaxAge, "retention.max_age"
		}
	}
	if keep != "" {
		n, err := strconv.Atoi(keep)
		if err != nil || n < 0 || n > 10000 {
			return fieldErr(keepField, keep, "must be an integer between 0 and 10000 (0 = no count rule)")
		}
		cfg.KeepLast = n
	}
	if maxAge != "" {
		d, err := ParseDuration(maxAge)
		if err != nil || d < time.Hour {
			return fieldErr(ageField, maxAge, "must be a duration of at least 1h, e.g. 720h or 30d")
		}
		cfg.MaxAge = d
	}
	return nil
}

// fillConcurrency: how many instances run at once.
func (cfg *Config) fillConcurrency(ev *Event, env func(string) string) error {
	// Concurrency.
	cfg.MaxConcurrency = DefaultMaxConcurrency
	if ev.MaxConcurrency != nil {
		cfg.MaxConcurrency = *ev.MaxConcurrency
		if cfg.MaxConcurrency < 1 || cfg.MaxConcurrency > MaxMaxConcurrency {
			return fieldErr("max_concurrency", strconv.Itoa(cfg.MaxConcurrency), "must be between 1 and %d", MaxMaxConcurrency)
		}
	} else if v := env("QUIESCE_MAX_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxMaxConcurrency {
			return fieldErr("QUIESCE_MAX_CONCURRENCY", v, "must be an integer between 1 and %d", MaxMaxConcurrency)
		}
		cfg.MaxConcurrency = n
	}
	return nil
}

// StackFromEnv is the stack name every snapshot tag and metric carries:
// QUIESCE_STACK, else the function's name. (main uses it for the metrics'
// Stack dimension, so both always agree.)
func StackFromEnv(getenv func(string) string) string {
	return cmp.Or(strings.TrimSpace(getenv("QUIESCE_STACK")), strings.TrimSpace(getenv("AWS_LAMBDA_FUNCTION_NAME")))
}

// ValidateMounts checks mount paths against the SSM document's pattern.
func ValidateMounts(field string, mounts []string) error {
	seen := map[string]bool{}
	for i, m := range mounts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !mountRe.MatchString(m) {
			return fieldErr(f, m, "must be an absolute path of letters, digits and ._- (no trailing slash, no spaces)")
		}
		if m == "/" || strings.Contains(m, "/../") || strings.HasSuffix(m, "/..") || strings.Contains(m, "/./") {
			return fieldErr(f, m, "must be a clean absolute path")
		}
		if seen[m] {
			return fieldErr(f, m, "listed twice")
		}
		seen[m] = true
	}
	return nil
}

// ValidateLock checks a --mysql-lock value.
func ValidateLock(field, v string) error {
	for _, m := range LockModes {
		if v == m {
			return nil
		}
	}
	return fieldErr(field, v, "must be one of %s", strings.Join(LockModes, "|"))
}

// ValidateFreezeTimeout parses and range-checks a freeze timeout.
func ValidateFreezeTimeout(field, v string) (time.Duration, error) {
	return duration(field, v, DefaultFreezeTimeout, MinFreezeTimeout, MaxFreezeTimeout)
}

// ValidateUserTags checks snapshot_tags: EC2 allows 50 tags per resource
// and quiesce uses ReservedTags of them; no aws: or quiesce: keys (those
// are reserved for AWS and for the honest consistency record).
func ValidateUserTags(tags map[string]string) error {
	if len(tags) > MaxUserTags {
		return fieldErr("snapshot_tags", strconv.Itoa(len(tags))+" tags", "at most %d user tags (EC2 allows %d per snapshot, quiesce uses %d)", MaxUserTags, contract.MaxTagsPerResource, ReservedTags)
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		switch {
		case k == "" || utf8.RuneCountInString(k) > 128:
			return fieldErr("snapshot_tags", k, "tag key must be 1-128 characters")
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return fieldErr("snapshot_tags", k, "tag keys starting with aws: are reserved by AWS")
		case strings.HasPrefix(strings.ToLower(k), contract.TagPrefix):
			return fieldErr("snapshot_tags", k, "tag keys starting with quiesce: are reserved")
		case k == contract.TagName:
			return fieldErr("snapshot_tags", k, "Name is set by quiesce")
		case utf8.RuneCountInString(v) > 256:
			return fieldErr("snapshot_tags."+k, v, "tag value longer than 256 characters")
		}
	}
	return nil
}

func duration(field, v string, def, min, max time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := ParseDuration(v)
	if err != nil {
		return 0, fieldErr(field, v, "not a duration (e.g. 500ms, 30s, 2m)")
	}
	if d < min || d > max {
		return 0, fieldErr(field, v, "must be between %s and %s", HumanDuration(min), HumanDuration(max))
	}
	return d, nil
}

// HumanDuration prints a duration the way an operator writes it: 10m, not
// 10m0s (the form error messages use for the limits they name).
func HumanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ParseDuration is time.ParseDuration plus a days suffix ("30d"), the
// durations an operator writes in an event or the environment; a negative
// or non-numeric day count is an error.
func ParseDuration(v string) (time.Duration, error) {
	if strings.HasSuffix(v, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad day count %q", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}
