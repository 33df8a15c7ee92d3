package verify

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
)

// Config is one verify invocation, validated.
type Config struct {
	Stack       string
	Document    string
	InstanceIDs []string
	TargetTags  map[string]string
	// RunID, when set, verifies the sets of that run (again, if need be)
	// instead of each instance's newest unverified set.
	RunID string
	// VerifierTag: verifiers are the instances tagged quiesce:role=<this>.
	VerifierTag string
	// Every: an instance whose sets were verified less than this long ago
	// is not due (0: verify whenever there is an unverified set).
	Every time.Duration
	// MaxDuration bounds a verification from its first CreateVolume to the
	// deletion of its last volume (VerifyMaxHours).
	MaxDuration time.Duration
	// Paths on the verifier, passed to hostagent verify ("" = its default).
	CheckSQL          string
	Mysqld            string
	MysqldOptionsFile string
}

// Options is the event's "verify" object.
type Options struct {
	VerifierTag       string `json:"verifier_tag,omitempty"`
	Every             string `json:"every,omitempty"`
	MaxHours          *int   `json:"max_hours,omitempty"`
	CheckSQL          string `json:"check_sql,omitempty"`
	Mysqld            string `json:"mysqld,omitempty"`
	MysqldOptionsFile string `json:"mysqld_options_file,omitempty"`
}

// Defaults and limits.
const (
	DefaultDocument    = "QuiesceVerify"
	DefaultVerifierTag = "verifier"
	DefaultEvery       = 24 * time.Hour
	DefaultMaxHours    = 6
	// MaxMaxHours is SSM's longest execution timeout for a command step (48 h),
	// which the verify document uses.
	MaxMaxHours = contract.MaxVerifyHours
)

var (
	pathRe      = regexp.MustCompile(`^/[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$`)
	tagValueRe  = regexp.MustCompile(`^[A-Za-z0-9_.:/=+@ -]{1,256}$`)
	documentRe  = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{3,128}$`)
	everyFormat = "a duration such as 24h, 7d or 0 (verify whenever a new set exists)"
)

func fieldErr(field, value, format string, args ...any) error {
	return &event.ValidationError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// ParseConfig reads the verify options of a parsed event, falling back to
// the QUIESCE_VERIFY_* environment (the template sets them).
func ParseConfig(ev *event.Config, getenv func(string) string) (*Config, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var o Options
	if len(ev.Verify) > 0 && !bytes.Equal(bytes.TrimSpace(ev.Verify), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(ev.Verify))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return nil, &event.ValidationError{Field: "verify", Msg: err.Error()}
		}
	}
	c := &Config{Stack: ev.Stack, InstanceIDs: ev.InstanceIDs, TargetTags: ev.TargetTags}
	if ev.RunIDGiven {
		c.RunID = ev.RunID
	}
	c.Document = cmp.Or(env("QUIESCE_VERIFY_DOCUMENT"), DefaultDocument)
	if !documentRe.MatchString(c.Document) {
		return nil, fieldErr("QUIESCE_VERIFY_DOCUMENT", c.Document, "not a valid SSM document name")
	}
	c.VerifierTag = cmp.Or(o.VerifierTag, env("QUIESCE_VERIFIER_TAG_VALUE"), DefaultVerifierTag)
	if !tagValueRe.MatchString(c.VerifierTag) {
		return nil, fieldErr("verify.verifier_tag", c.VerifierTag, "must be 1-256 characters of letters, digits and _.:/=+@- or space")
	}
	if err := c.durations(o, env); err != nil {
		return nil, err
	}
	for _, p := range []struct{ field, value string }{
		{"verify.check_sql", cmp.Or(o.CheckSQL, env("QUIESCE_VERIFY_CHECK_SQL"))},
		{"verify.mysqld", cmp.Or(o.Mysqld, env("QUIESCE_VERIFY_MYSQLD"))},
		{"verify.mysqld_options_file", cmp.Or(o.MysqldOptionsFile, env("QUIESCE_VERIFY_MYSQLD_OPTIONS_FILE"))},
	} {
		if p.value != "" && !pathRe.MatchString(p.value) {
			return nil, fieldErr(p.field, p.value, "must be an absolute path of letters, digits and ._-")
		}
	}
	c.CheckSQL = cmp.Or(o.CheckSQL, env("QUIESCE_VERIFY_CHECK_SQL"))
	c.Mysqld = cmp.Or(o.Mysqld, env("QUIESCE_VERIFY_MYSQLD"))
	c.MysqldOptionsFile = cmp.Or(o.MysqldOptionsFile, env("QUIESCE_VERIFY_MYSQLD_OPTIONS_FILE"))
	return c, nil
}

func (c *Config) durations(o Options, env func(string) string) error {
	every, field := o.Every, "verify.every"
	if every == "" {
		every, field = env("QUIESCE_VERIFY_EVERY"), "QUIESCE_VERIFY_EVERY"
	}
	c.Every = DefaultEvery
	if every != "" {
		d, err := event.ParseDuration(every)
		if err != nil || d < 0 {
			return fieldErr(field, every, "must be %s", everyFormat)
		}
		c.Every = d
	}
	hours, field := DefaultMaxHours, "verify.max_hours"
	if o.MaxHours != nil {
		hours = *o.MaxHours
	} else if v := env("QUIESCE_VERIFY_MAX_HOURS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fieldErr("QUIESCE_VERIFY_MAX_HOURS", v, "must be an integer between 1 and %d", MaxMaxHours)
		}
		hours, field = n, "QUIESCE_VERIFY_MAX_HOURS"
	}
	if hours < 1 || hours > MaxMaxHours {
		return fieldErr(field, strconv.Itoa(hours), "must be between 1 and %d hours", MaxMaxHours)
	}
	c.MaxDuration = time.Duration(hours) * time.Hour
	return nil
}
