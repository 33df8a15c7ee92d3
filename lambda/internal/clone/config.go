// Package clone is the Lambda's "action":"clone": it makes a new replica
// from an application-consistent snapshot set. It creates a volume from
// every snapshot of the set in the target instance's zone, attaches each at
// the device name the source had, and runs `hostagent clone` there through
// the QuiesceClone document with the source and coordinates the set's tags
// name: a set of a primary clones into a replica of that primary (its binlog
// position or GTID state), a set of a replica into a sibling replica of the
// same source (the replica's source coordinates, quiesce:source-*). The
// volumes become the clone's; a clone that fails has them detached and
// deleted again. Progress lives in tags on the volumes, so an invocation
// that runs out of time is resumed by the next one with the same event.
package clone

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
)

// Options is the event's "clone" object.
type Options struct {
	// SourceInstance: clone the newest complete application set of this
	// instance (or, with run_id, that run's set of it).
	SourceInstance string `json:"source_instance,omitempty"`
	// TargetInstance receives the volumes and runs the clone.
	TargetInstance string `json:"target_instance"`
	// SourceHost/SourcePort override where the clone replicates from. A
	// set of a replica names its source in its tags; a set of a primary is
	// replicated from the source instance's private IP address, port 3306.
	SourceHost string `json:"source_host,omitempty"`
	SourcePort int    `json:"source_port,omitempty"`
	// Paths and commands on the target, passed to hostagent clone.
	ReplicationDefaultsFile string `json:"replication_defaults_file,omitempty"`
	MySQLDefaultsFile       string `json:"mysql_defaults_file,omitempty"`
	StartCommand            string `json:"start_command,omitempty"`
	StopCommand             string `json:"stop_command,omitempty"`
	// ServerID is the clone's server_id; SourceServerIDs are the ones it
	// must not have (the snapshotted server's, its source's).
	ServerID        uint32   `json:"server_id,omitempty"`
	SourceServerIDs []uint32 `json:"source_server_ids,omitempty"`
	// Timeout is hostagent clone's --timeout (default 30m, at most 24h).
	Timeout string `json:"timeout,omitempty"`
}

// Config is one clone invocation, validated.
type Config struct {
	Stack    string
	Document string
	// RunID, when set, names the set's run.
	RunID string
	// TargetRole: a target must be tagged quiesce:role=<TargetRole>, the
	// tag the IAM policy keys AttachVolume and SendCommand on.
	TargetRole string
	Options
	timeout time.Duration
}

// Defaults and limits.
const (
	DefaultDocument   = "QuiesceClone"
	DefaultTargetRole = "clone-target"
	// TagRole on an instance names its role (the verify action's verifier
	// carries the same key with its own value).
	TagRole        = contract.InstanceTagRole
	DefaultTimeout = 30 * time.Minute
	MaxTimeout     = 24 * time.Hour
)

var (
	instanceRe = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	pathRe     = regexp.MustCompile(`^/[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$`)
	hostRe     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?$`)
	startRe    = regexp.MustCompile(`^systemctl start [A-Za-z0-9@_.-]{1,80}$`)
	stopRe     = regexp.MustCompile(`^systemctl stop [A-Za-z0-9@_.-]{1,80}$`)
	docRe      = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,128}$`)
)

func fieldErr(field string, value any, format string, args ...any) error {
	return fmt.Errorf("clone.%s %q: %s", field, fmt.Sprint(value), fmt.Sprintf(format, args...))
}

// ParseConfig validates the clone options of an event; nothing is created
// before they pass. QUIESCE_CLONE_DOCUMENT names the document,
// QUIESCE_CLONE_TARGET_ROLE the quiesce:role value a target must carry.
func ParseConfig(cfg *event.Config, getenv func(string) string) (*Config, error) {
	c := &Config{Stack: cfg.Stack, Document: getenv("QUIESCE_CLONE_DOCUMENT"), TargetRole: getenv("QUIESCE_CLONE_TARGET_ROLE")}
	if c.TargetRole == "" {
		c.TargetRole = DefaultTargetRole
	}
	if cfg.RunIDGiven {
		c.RunID = cfg.RunID
	}
	if c.Document == "" {
		c.Document = DefaultDocument
	}
	if !docRe.MatchString(c.Document) {
		return nil, fmt.Errorf("QUIESCE_CLONE_DOCUMENT %q: not a valid SSM document name", c.Document)
	}
	if len(cfg.Clone) == 0 {
		return nil, fmt.Errorf("clone: required with \"action\":\"clone\" (at least target_instance)")
	}
	dec := json.NewDecoder(bytes.NewReader(cfg.Clone))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c.Options); err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) validate() error {
	o := &c.Options
	if !instanceRe.MatchString(o.TargetInstance) {
		return fieldErr("target_instance", o.TargetInstance, "required: the EC2 instance ID (i-0123456789abcdef0) that becomes the replica")
	}
	if o.SourceInstance == "" && c.RunID == "" {
		return fieldErr("source_instance", "", "required without run_id: whose newest set to clone")
	}
	if o.SourceInstance != "" && !instanceRe.MatchString(o.SourceInstance) {
		return fieldErr("source_instance", o.SourceInstance, "not an EC2 instance ID")
	}
	if o.SourceInstance == o.TargetInstance {
		return fieldErr("target_instance", o.TargetInstance, "is the source instance")
	}
	if o.SourceHost != "" && !hostRe.MatchString(o.SourceHost) {
		return fieldErr("source_host", o.SourceHost, "not a host name or address")
	}
	if o.SourcePort < 0 || o.SourcePort > 65535 {
		return fieldErr("source_port", o.SourcePort, "want 1-65535")
	}
	if o.ReplicationDefaultsFile == "" {
		o.ReplicationDefaultsFile = "/etc/quiesce/replication.cnf"
	}
	for name, p := range map[string]string{"replication_defaults_file": o.ReplicationDefaultsFile, "mysql_defaults_file": o.MySQLDefaultsFile} {
		if p != "" && !pathRe.MatchString(p) {
			return fieldErr(name, p, "want an absolute path of letters, digits and ._-")
		}
	}
	if (o.StartCommand == "") != (o.StopCommand == "") || (o.StartCommand != "" && (!startRe.MatchString(o.StartCommand) || !stopRe.MatchString(o.StopCommand))) {
		return fieldErr("start_command", o.StartCommand, "with stop_command, as \"systemctl start <unit>\" and \"systemctl stop <unit>\"")
	}
	for _, id := range o.SourceServerIDs {
		if id == 0 || id == o.ServerID {
			return fieldErr("source_server_ids", id, "a server_id of the source must be non-zero and not the clone's server_id")
		}
	}
	c.timeout = DefaultTimeout
	if o.Timeout != "" {
		d, err := time.ParseDuration(o.Timeout)
		if err != nil || d < time.Minute || d > MaxTimeout {
			return fieldErr("timeout", o.Timeout, "want a duration from 1m to 24h")
		}
		c.timeout = d
	}
	return nil
}
