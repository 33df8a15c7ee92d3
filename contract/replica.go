package contract

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Replication is the replica state read under the lock, one entry per
// replication channel (MySQL) or connection (MariaDB multi-source). It is
// set on LockInfo whenever the locked server is a replica, whatever the lock
// mode; nil on a server that replicates from nobody.
type Replication struct {
	Channels []ReplicaChannel `json:"channels"`
	// StoppedAppliers (lock mode replica) are the channels whose applier (SQL
	// thread) the lock stopped and that release, or any fail-safe layer,
	// starts again. A channel whose applier was already stopped is not listed
	// and stays stopped.
	StoppedAppliers []string `json:"stopped_appliers,omitempty"`
}

// ReplicaChannel is one channel's SHOW REPLICA STATUS / SHOW ALL SLAVES
// STATUS row, reduced to what restoring or re-pointing a copy needs. It never
// carries the replication password.
type ReplicaChannel struct {
	// Name is the channel or connection name; "" is the default one.
	Name       string `json:"name"`
	SourceHost string `json:"source_host"`
	SourcePort int    `json:"source_port"`
	SourceUser string `json:"source_user"`
	// SourceLogFile/SourceLogPos are the source's binary log coordinates the
	// applier has executed up to (Relay_Master_Log_File/Exec_Master_Log_Pos;
	// Relay_Source_Log_File/Exec_Source_Log_Pos on MySQL >= 8.0.22): where a
	// copy of this data resumes replicating without GTIDs.
	SourceLogFile string `json:"source_log_file"`
	SourceLogPos  uint64 `json:"source_log_pos"`
	// ReadSourceLogFile/ReadSourceLogPos are how far the receiver (IO
	// thread) has read (Master_Log_File/Read_Master_Log_Pos).
	ReadSourceLogFile string `json:"read_source_log_file,omitempty"`
	ReadSourceLogPos  uint64 `json:"read_source_log_pos,omitempty"`
	RelayLogFile      string `json:"relay_log_file,omitempty"`
	RelayLogPos       uint64 `json:"relay_log_pos,omitempty"`
	// GTID is the executed GTID state: @@gtid_slave_pos on MariaDB (all
	// domains, the same for every connection), Executed_Gtid_Set on MySQL.
	GTID string `json:"gtid,omitempty"`
	// GTIDReceived is what the receiver has fetched (MariaDB Gtid_IO_Pos,
	// MySQL Retrieved_Gtid_Set).
	GTIDReceived string `json:"gtid_received,omitempty"`
	// UsingGTID is MariaDB's Using_Gtid (No, Slave_Pos, Current_Pos) or, on
	// MySQL, "auto-position" when Auto_Position=1 and "No" otherwise.
	UsingGTID string `json:"using_gtid,omitempty"`
	// IORunning and SQLRunning are the thread states as the server reports
	// them (Yes, No, Connecting, Preparing).
	IORunning  string `json:"io_running"`
	SQLRunning string `json:"sql_running"`
	// SecondsBehind is Seconds_Behind_Master/Source; nil when the server
	// reports NULL (the applier is stopped, or the receiver is not connected).
	SecondsBehind *int64 `json:"seconds_behind,omitempty"`
	LastIOErrno   int    `json:"last_io_errno,omitempty"`
	LastIOError   string `json:"last_io_error,omitempty"`
	LastSQLErrno  int    `json:"last_sql_errno,omitempty"`
	LastSQLError  string `json:"last_sql_error,omitempty"`
}

// Snapshot tag keys that carry the replication coordinates of the default
// channel (see ReplicationTags).
const (
	TagSourceHost    = "quiesce:source-host"
	TagSourcePort    = "quiesce:source-port"
	TagSourceLogFile = "quiesce:source-log-file"
	TagSourceLogPos  = "quiesce:source-log-pos"
	TagSourceGTID    = "quiesce:source-gtid"
	// TagSourceGTIDTruncated is set (to the number of GTID elements left
	// out) when the GTID state does not fit in one tag value.
	TagSourceGTIDTruncated = "quiesce:source-gtid-truncated"
	// TagSourceChannels lists every channel name when there are several.
	TagSourceChannels = "quiesce:source-channels"
	// MaxTagValueLen is EC2's limit on a tag value, in Unicode characters.
	MaxTagValueLen = 256
)

// ReplicationTagKeys are every key ReplicationTags may return; the Lambda
// writes them, so SnapshotTagKeys (and the tag budget) counts them.
var ReplicationTagKeys = [...]string{
	TagSourceHost, TagSourcePort, TagSourceLogFile, TagSourceLogPos,
	TagSourceGTID, TagSourceGTIDTruncated, TagSourceChannels,
}

// DefaultChannel is the channel the tags describe: the default one (name
// "") when it exists, otherwise the first by name.
func (r *Replication) DefaultChannel() (ReplicaChannel, bool) {
	if r == nil || len(r.Channels) == 0 {
		return ReplicaChannel{}, false
	}
	best := r.Channels[0]
	for _, c := range r.Channels[1:] {
		if best.Name != "" && (c.Name == "" || c.Name < best.Name) {
			best = c
		}
	}
	return best, true
}

// ReplicationTags renders the default channel's coordinates as snapshot tags,
// every value within MaxTagValueLen. nil when r has no channel. A GTID state
// too long for one value keeps its leading elements whole (MariaDB
// domain-server-seqno triples, MySQL uuid:intervals sets) and never cuts one
// in half, so what is tagged is a valid GTID list, but of fewer domains or
// sources than the full state: TagSourceGTIDTruncated then says how many
// were left out, and the full state is in the FreezeReport only. The channel
// list (several channels) is cut the same way, at a name, ending in ",+N"
// for the N names left out; the default channel is written as two
// single quotes.
func ReplicationTags(r *Replication) map[string]string {
	c, ok := r.DefaultChannel()
	if !ok {
		return nil
	}
	tags := map[string]string{
		TagSourceHost:    truncateRunes(c.SourceHost, MaxTagValueLen),
		TagSourcePort:    strconv.Itoa(c.SourcePort),
		TagSourceLogFile: truncateRunes(c.SourceLogFile, MaxTagValueLen),
		TagSourceLogPos:  strconv.FormatUint(c.SourceLogPos, 10),
	}
	if c.GTID != "" {
		gtid, dropped := joinWithin(SplitList(c.GTID), ",", MaxTagValueLen, "")
		tags[TagSourceGTID] = gtid
		if dropped > 0 {
			tags[TagSourceGTIDTruncated] = strconv.Itoa(dropped)
		}
	}
	if len(r.Channels) > 1 {
		names := make([]string, len(r.Channels))
		for i, ch := range r.Channels {
			names[i] = ch.Name
			if ch.Name == "" {
				names[i] = "''"
			}
		}
		list, dropped := joinWithin(names, ",", MaxTagValueLen, ",+")
		switch {
		case dropped > 0 && list == "":
			list = "+" + strconv.Itoa(dropped)
		case dropped > 0:
			list += ",+" + strconv.Itoa(dropped)
		}
		tags[TagSourceChannels] = list
	}
	return tags
}

// joinWithin joins the leading elements that fit in max runes, keeping room
// for a suffix marker (suffixPrefix plus the count) if any must be dropped.
// It returns the joined value and how many elements were left out.
func joinWithin(elems []string, sep string, max int, suffixPrefix string) (string, int) {
	var b strings.Builder
	n := 0
	for i, e := range elems {
		budget := max
		if i < len(elems)-1 && suffixPrefix != "" {
			budget -= utf8.RuneCountInString(suffixPrefix + strconv.Itoa(len(elems)))
		}
		add := utf8.RuneCountInString(e)
		if n > 0 {
			add += utf8.RuneCountInString(sep)
		}
		if utf8.RuneCountInString(b.String())+add > budget {
			return b.String(), len(elems) - i
		}
		if n > 0 {
			b.WriteString(sep)
		}
		b.WriteString(e)
		n++
	}
	return b.String(), 0
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}
