package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
)

// An operator at a terminal gets `status` and `check` as readable tables;
// anything else (SSM, a pipe, a file, or --json) gets the one JSON object
// the contract promises.

// isTerminal reports whether w is a terminal: an *os.File whose descriptor
// answers TCGETS.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func writeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// renderStatus prints rep as a table (one line per run, further mounts on
// continuation lines), or as JSON when table is false. now is for "LEFT".
func renderStatus(w io.Writer, rep contract.StatusReport, table bool, now time.Time) error {
	if !table {
		return writeJSON(w, rep)
	}
	if len(rep.Runs) == 0 {
		_, err := fmt.Fprintln(w, "no runs")
		return err
	}
	withLayers := false
	for _, r := range rep.Runs {
		withLayers = withLayers || len(failsafeLayers(r)) > 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "RUN\tSTATE\tLOCK\tDEADLINE\tLEFT\tHOLDER\tGUARDIAN\t"
	if withLayers {
		header += "FAIL-SAFE\t"
	}
	fmt.Fprintln(tw, header+"MOUNTS")
	for _, r := range rep.Runs {
		state := r.State
		if r.ThawedBy != "" {
			state += " (" + r.ThawedBy + ")"
		}
		cells := []string{termSafe(r.RunID), termSafe(state), termSafe(r.LockMode), clock(r.Deadline),
			timeLeft(r, now), proc(r.HolderPID, r.HolderAlive), proc(r.GuardianPID, r.GuardAlive)}
		if withLayers {
			cells = append(cells, strings.Join(failsafeLayers(r), ","))
		}
		mounts := r.Mounts
		if len(mounts) == 0 {
			mounts = []string{"-"}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t"+termSafe(mounts[0]))
		for _, m := range mounts[1:] {
			fmt.Fprintln(tw, strings.Repeat("\t", len(cells))+termSafe(m))
		}
	}
	return tw.Flush()
}

// renderCheck prints rep as a summary line, a mount table, the lock, the
// fail-safe layers (when the report carries them) and every problem; or as
// JSON when table is false.
func renderCheck(w io.Writer, rep contract.CheckReport, table bool) error {
	if !table {
		return writeJSON(w, rep)
	}
	switch n := len(rep.Problems); {
	case rep.OK:
		fmt.Fprintln(w, "check: OK")
	case n == 1:
		fmt.Fprintln(w, "check: 1 problem")
	default:
		fmt.Fprintf(w, "check: %d problems\n", n)
	}
	if len(rep.Mounts) == 0 {
		fmt.Fprintln(w, "no mount passed preflight")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MOUNT\tFSTYPE\tDEVICE\tVOLUMES")
		for _, m := range rep.Mounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termSafe(m.Path), termSafe(m.FSType), termSafe(m.Device), volumeCell(m))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "lock: "+lockLine(rep.Lock))
	writeLayers(w, failsafeLayers(rep))
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, "problems:")
		for _, p := range rep.Problems {
			fmt.Fprintln(w, "  - "+termSafe(p))
		}
	}
	return nil
}

func writeLayers(w io.Writer, layers []string) {
	if len(layers) > 0 {
		fmt.Fprintln(w, "fail-safe layers: "+termSafe(strings.Join(layers, ", ")))
	}
}

// failsafeLayers reads "failsafe_layers" from v's JSON form, so a report
// shows them as soon as its type carries the field (FreezeReport does).
func failsafeLayers(v any) []string {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var x struct {
		Layers []string `json:"failsafe_layers"`
	}
	if json.Unmarshal(b, &x) != nil {
		return nil
	}
	return x.Layers
}

func lockLine(l contract.LockInfo) string {
	s := termSafe(l.Mode)
	if l.Requested != "" {
		s += " (requested " + termSafe(l.Requested) + ")"
	}
	if l.ServerVersion != "" {
		s += ", server " + termSafe(l.ServerVersion)
	}
	if l.BinlogFile != "" {
		s += fmt.Sprintf(", binlog %s:%d", termSafe(l.BinlogFile), l.BinlogPos)
	}
	return s
}

func volumeCell(m contract.MountReport) string {
	switch {
	case len(m.VolumeIDs) > 0:
		return termSafe(strings.Join(m.VolumeIDs, ","))
	case len(m.EC2Devices) > 0:
		return "EC2 device " + termSafe(strings.Join(m.EC2Devices, ","))
	}
	return "-"
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// timeLeft is the time until a held run's deadline (all layers thaw by then).
func timeLeft(r contract.RunStatus, now time.Time) string {
	if r.State != "held" || r.Deadline.IsZero() {
		return "-"
	}
	d := r.Deadline.Sub(now).Round(100 * time.Millisecond)
	if d <= 0 {
		return "overdue " + (-d).String()
	}
	return d.String()
}

func proc(pid int, alive bool) string {
	if pid == 0 {
		return "-"
	}
	if alive {
		return strconv.Itoa(pid) + " alive"
	}
	return strconv.Itoa(pid) + " dead"
}

// termSafe quotes a value that would otherwise reach the terminal with
// control characters (a mount path with an escape sequence in it).
func termSafe(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
