package main

// An independent check of the built bootstrap: a second, deliberately
// different EC2/SSM stand-in (written here from the wire formats the SDK's
// deserializers expect, sharing no code with test/awslocal), with the
// quirks real AWS has — namespaced EC2 XML with requestId, several
// reservations per DescribeInstances page and short pages with nextToken,
// stopped and ConnectionLost instances, GetCommandInvocation answering
// InvocationDoesNotExist, then Pending, InProgress and the result,
// ThrottlingException / RequestLimitExceeded / per-volume rate errors,
// InvalidParameters for values the SSM document does not allow, and
// InvalidSnapshot.InUse. The stand-in plays the hosts too and records what
// actually happened (when each freeze held, which snapshot was created
// inside a hold); the test compares the result JSON and the snapshot tags
// with that record.

import (
	"cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/ssmdoc"
)

type indHold struct {
	runID           string
	start, deadline time.Time
	end             time.Time
	endedBy         string
}

func (h *indHold) active(now time.Time) bool {
	return h != nil && h.end.IsZero() && now.Before(h.deadline)
}

type indInstance struct {
	id, state, ping string
	tags            map[string]string
	root            string
	devices         [][2]string         // device name, volume ID
	mountVols       map[string][]string // what the host reports per mount
	lockMode        string              // what "auto" resolves to on the host
	gtid            string
	freeze          string // "ok", "lockwait", "hang"
	lockLost        string // set: the thaw reports the MySQL lock lost for this reason
	holds           []*indHold
}

func (in *indInstance) tagSet() map[string]string { return in.tags }

func (in *indInstance) filter(fl indFilter) (ok, known bool) {
	switch fl.name {
	case "tag-key":
		return slices.ContainsFunc(fl.values, func(k string) bool { _, has := in.tags[k]; return has }), true
	case "instance-state-name":
		return slices.Contains(fl.values, in.state), true
	}
	return false, false
}

func (in *indInstance) hold() *indHold {
	if len(in.holds) == 0 {
		return nil
	}
	return in.holds[len(in.holds)-1]
}

type indSnap struct {
	id, vol, inst, owner, api string
	start                     time.Time
	tags                      map[string]string
	inUse                     bool
	// heldRun is the run whose freeze held on the instance when the
	// snapshot call arrived ("" when nothing held).
	heldRun string
	seeded  bool
}

func (sn *indSnap) tagSet() map[string]string { return sn.tags }

func (sn *indSnap) filter(fl indFilter) (ok, known bool) {
	switch fl.name {
	case "status":
		return in(fl.values, sn.status()), true
	case "volume-id":
		return in(fl.values, sn.vol), true
	}
	return false, false
}

// status is what DescribeSnapshots reports: seeded snapshots are completed;
// new ones stay pending.
func (sn *indSnap) status() string {
	if sn.seeded {
		return "completed"
	}
	return "pending"
}

type indCmd struct {
	id, inst, action string
	params           map[string][]string
	polls            int
	hang             bool
	status           string
	code             int
	stdout, stderr   string
}

type indStandIn struct {
	t   *testing.T
	doc *ssmdoc.Document

	mu        sync.Mutex
	insts     []*indInstance
	snaps     map[string]*indSnap
	snapOrder []string
	cmds      map[string]*indCmd
	seq       int
	requests  []string // "ec2:Action" / "ssm:Action"
	deleted   []string
	problems  []string // protocol misuse by the Lambda

	calls                         map[string]int // requests so far, by "ec2:Action" / "ssm:Action"
	sendThrottled                 map[string]bool
	perVolumeRejected             map[string]bool
	alwaysThrottleCreateSnapshots map[string]bool
	thawThrottledSince            map[string]time.Time
}

func newIndStandIn(t *testing.T) *indStandIn {
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	return &indStandIn{t: t, doc: doc, snaps: map[string]*indSnap{}, cmds: map[string]*indCmd{}, calls: map[string]int{},
		sendThrottled: map[string]bool{}, perVolumeRejected: map[string]bool{}, alwaysThrottleCreateSnapshots: map[string]bool{}, thawThrottledSince: map[string]time.Time{}}
}

func (s *indStandIn) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%017x", prefix, 0xabc000+s.seq)
}

// call records a request of api ("ec2:Action" / "ssm:Action") and returns
// how many of them have come so far, this one included (the stand-in
// throttles some by their number).
func (s *indStandIn) call(api string) int {
	s.requests = append(s.requests, api)
	s.calls[api]++
	return s.calls[api]
}

func (s *indStandIn) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *indStandIn) instance(id string) *indInstance {
	for _, in := range s.insts {
		if in.id == id {
			return in
		}
	}
	return nil
}

func (s *indStandIn) volumeOwner(vol string) (*indInstance, string) {
	for _, in := range s.insts {
		for _, d := range in.devices {
			if d[1] == vol {
				return in, d[0]
			}
		}
	}
	return nil, ""
}

func (s *indStandIn) seedSnapshot(vol string, age time.Duration, tags map[string]string, inUse bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID("snap-")
	s.snaps[id] = &indSnap{id: id, vol: vol, owner: "210987654321", start: time.Now().Add(-age), tags: tags, inUse: inUse, seeded: true, api: "seed"}
	s.snapOrder = append(s.snapOrder, id)
	return id
}

// ---- EC2 Query ----

func xmlEsc(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

func (s *indStandIn) ec2OK(w http.ResponseWriter, action, inner string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`+"\n  <requestId>%s</requestId>\n%s</%sResponse>",
		action, "59dbff89-35bd-4eac-99ed-be587EXAMPLE", inner, action)
}

func ec2Err(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>", code, xmlEsc(msg))
}

func formList(f url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[fmt.Sprintf("%s.%d", prefix, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

type indFilter struct {
	name   string
	values []string
}

func formFilters(f url.Values) []indFilter {
	var out []indFilter
	for i := 1; ; i++ {
		name := f.Get(fmt.Sprintf("Filter.%d.Name", i))
		if name == "" {
			return out
		}
		out = append(out, indFilter{name, formList(f, fmt.Sprintf("Filter.%d.Value", i))})
	}
}

func formTags(f url.Values, prefix string) map[string]string {
	tags := map[string]string{}
	for i := 1; ; i++ {
		k, ok := f[fmt.Sprintf("%s.%d.Key", prefix, i)]
		if !ok {
			return tags
		}
		tags[k[0]] = f.Get(fmt.Sprintf("%s.%d.Value", prefix, i))
	}
}

func in(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}

func tagXML(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("<tagSet>")
	for _, k := range keys {
		fmt.Fprintf(&b, "<item><key>%s</key><value>%s</value></item>", xmlEsc(k), xmlEsc(tags[k]))
	}
	b.WriteString("</tagSet>")
	return b.String()
}

// filterable is a resource a Describe call filters: tag:KEY filters read
// its tags, any other filter its own fields (known false: EC2 has no such
// filter for it).
type filterable interface {
	tagSet() map[string]string
	filter(fl indFilter) (ok, known bool)
}

// describeMatches keeps the items pick selects (the call's own parameters)
// that every one of the request's filters matches; false once it has
// answered EC2's error for a filter the resource does not have.
func describeMatches[T filterable](w http.ResponseWriter, f url.Values, items []T, pick func(T) bool) (match []T, ok bool) {
	for _, it := range items {
		if !pick(it) {
			continue
		}
		keep := true
		for _, fl := range formFilters(f) {
			if key, isTag := strings.CutPrefix(fl.name, "tag:"); isTag {
				v, has := it.tagSet()[key]
				keep = keep && has && in(fl.values, v)
				continue
			}
			m, known := it.filter(fl)
			if !known {
				ec2Err(w, 400, "InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", fl.name))
				return nil, false
			}
			keep = keep && m
		}
		if keep {
			match = append(match, it)
		}
	}
	return match, true
}

// page returns the bounds of the page of n items that token (prefix and an
// offset; "" for the first page) asks for, size items at most, and the token
// of the page after it ("" on the last).
func page(token, prefix string, size, n int) (start, end int, next string) {
	start, _ = strconv.Atoi(strings.TrimPrefix(token, prefix))
	end = min(start+size, n)
	if end < n {
		next = prefix + strconv.Itoa(end)
	}
	return start, end, next
}

// nextTokenXML is an EC2 response's nextToken element ("" on the last page).
func nextTokenXML(next string) string {
	if next == "" {
		return ""
	}
	return "<nextToken>" + next + "</nextToken>"
}

// newSnapXML is a snapshot as CreateSnapshot (state element "status") and
// CreateSnapshots ("state") return it: just created, pending.
func newSnapXML(sn *indSnap, stateElem, description string) string {
	return fmt.Sprintf("<snapshotId>%s</snapshotId><volumeId>%s</volumeId><%s>pending</%s><startTime>%s</startTime><progress></progress><ownerId>210987654321</ownerId><volumeSize>50</volumeSize><description>%s</description><encrypted>false</encrypted>%s",
		sn.id, sn.vol, stateElem, stateElem, sn.start.UTC().Format("2006-01-02T15:04:05.000Z"), xmlEsc(description), tagXML(sn.tags))
}

// checkTags applies EC2's tag rules to what a snapshot would carry.
func checkTags(tags map[string]string) string {
	if len(tags) > 50 {
		return "TagLimitExceeded"
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > 128 || utf8.RuneCountInString(v) > 256 || strings.HasPrefix(strings.ToLower(k), "aws:") {
			return "InvalidParameterValue"
		}
	}
	return ""
}

func (s *indStandIn) serveEC2(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := r.PostForm
	action := f.Get("Action")
	if f.Get("Version") != "2016-11-15" {
		ec2Err(w, 400, "InvalidParameterValue", "bad Version "+f.Get("Version"))
		return
	}
	s.mu.Lock()
	var respDelay, createDelay time.Duration
	if action == "CreateSnapshot" {
		if inst, _ := s.volumeOwner(f.Get("VolumeId")); inst != nil {
			if ms, err := strconv.Atoi(inst.tags["indie:response-delay-ms"]); err == nil {
				respDelay = time.Duration(ms) * time.Millisecond
			}
			if ms, err := strconv.Atoi(inst.tags["indie:create-delay-ms"]); err == nil {
				createDelay = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if createDelay > 0 {
		// The request waits in EC2's front end; the snapshot is taken
		// when it is processed, whether or not the caller still listens.
		s.mu.Unlock()
		time.Sleep(createDelay)
		s.mu.Lock()
	}
	if respDelay > 0 {
		// EBS has taken the snapshot; the response is slow to come back.
		rec := httptest.NewRecorder()
		defer func() {
			time.Sleep(respDelay)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		}()
		w = rec
	}
	defer s.mu.Unlock()
	nth := s.call("ec2:" + action)
	now := time.Now()
	switch action {
	case "DescribeInstances":
		if nth == 1 {
			ec2Err(w, 503, "RequestLimitExceeded", "Request limit exceeded.")
			return
		}
		ids := formList(f, "InstanceId")
		if len(ids) > 0 && f.Get("MaxResults") != "" {
			ec2Err(w, 400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
			return
		}
		for _, id := range ids {
			if s.instance(id) == nil {
				ec2Err(w, 400, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
				return
			}
		}
		match, ok := describeMatches(w, f, s.insts, func(inst *indInstance) bool { return len(ids) == 0 || in(ids, inst.id) })
		if !ok {
			return
		}
		// Real EC2 may return fewer items than MaxResults: pages of 3.
		start, end, next := page(f.Get("NextToken"), "page-", 3, len(match))
		var b strings.Builder
		b.WriteString("<reservationSet>")
		// Two instances per reservation, like one RunInstances call launching two.
		for i := start; i < end; i += 2 {
			fmt.Fprintf(&b, "<item><reservationId>r-%017x</reservationId><ownerId>210987654321</ownerId><groupSet/><instancesSet>", i)
			for _, inst := range match[i:min(i+2, end)] {
				code := map[string]int{"running": 16, "stopped": 80, "stopping": 64, "pending": 0}[inst.state]
				fmt.Fprintf(&b, "<item><instanceId>%s</instanceId><imageId>ami-0abcdef1234567890</imageId><instanceState><code>%d</code><name>%s</name></instanceState>"+
					"<privateDnsName>ip-10-0-0-1.ec2.internal</privateDnsName><instanceType>r7g.large</instanceType><placement><availabilityZone>us-east-1b</availabilityZone><tenancy>default</tenancy></placement>"+
					"<rootDeviceType>ebs</rootDeviceType><rootDeviceName>%s</rootDeviceName><blockDeviceMapping>", inst.id, code, inst.state, inst.root)
				for _, d := range inst.devices {
					fmt.Fprintf(&b, "<item><deviceName>%s</deviceName><ebs><volumeId>%s</volumeId><status>attached</status><attachTime>2026-03-01T10:00:00.000Z</attachTime><deleteOnTermination>%v</deleteOnTermination></ebs></item>", d[0], d[1], d[0] == inst.root)
				}
				fmt.Fprintf(&b, "</blockDeviceMapping>%s</item>", tagXML(inst.tags))
			}
			b.WriteString("</instancesSet></item>")
		}
		b.WriteString("</reservationSet>")
		b.WriteString(nextTokenXML(next))
		s.ec2OK(w, action, b.String())

	case "CreateSnapshot":
		vol := f.Get("VolumeId")
		inst, _ := s.volumeOwner(vol)
		if inst == nil {
			ec2Err(w, 400, "InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", vol))
			return
		}
		if inst.tags["indie:per-volume-once"] == "true" && !s.perVolumeRejected[vol] {
			s.perVolumeRejected[vol] = true
			ec2Err(w, 400, "SnapshotCreationPerVolumeRateExceeded", "The maximum per volume CreateSnapshot request rate has been exceeded. Use an increasing or variable sleep interval between requests.")
			return
		}
		tags, code := s.specTags(f)
		if code != "" {
			ec2Err(w, 400, code, "bad TagSpecification")
			return
		}
		sn := s.create(inst, vol, tags, "CreateSnapshot", now)
		s.ec2OK(w, action, newSnapXML(sn, "status", f.Get("Description")))

	case "CreateSnapshots":
		inst := s.instance(f.Get("InstanceSpecification.InstanceId"))
		if inst == nil {
			ec2Err(w, 400, "InvalidInstanceID.NotFound", "no such instance")
			return
		}
		if s.alwaysThrottleCreateSnapshots[inst.id] {
			ec2Err(w, 503, "RequestLimitExceeded", "Request limit exceeded.")
			return
		}
		excl := formList(f, "InstanceSpecification.ExcludeDataVolumeId")
		exclBoot := f.Get("InstanceSpecification.ExcludeBootVolume") == "true"
		tags, code := s.specTags(f)
		if code != "" {
			ec2Err(w, 400, code, "bad TagSpecification")
			return
		}
		var b strings.Builder
		b.WriteString("<snapshotSet>")
		for _, d := range inst.devices {
			if (exclBoot && d[0] == inst.root) || in(excl, d[1]) {
				continue
			}
			sn := s.create(inst, d[1], tags, "CreateSnapshots", now)
			b.WriteString("<item>" + newSnapXML(sn, "state", f.Get("Description")) + "</item>")
		}
		b.WriteString("</snapshotSet>")
		s.ec2OK(w, action, b.String())

	case "CreateTags":
		ids := formList(f, "ResourceId")
		tags := formTags(f, "Tag")
		for _, id := range ids {
			sn := s.snaps[id]
			if sn == nil {
				ec2Err(w, 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id))
				return
			}
			merged := map[string]string{}
			for k, v := range sn.tags {
				merged[k] = v
			}
			for k, v := range tags {
				merged[k] = v
			}
			if c := checkTags(merged); c != "" {
				ec2Err(w, 400, c, "tag rules")
				return
			}
		}
		for _, id := range ids {
			for k, v := range tags {
				s.snaps[id].tags[k] = v
			}
		}
		s.ec2OK(w, action, "<return>true</return>")

	case "DescribeSnapshots":
		if mr := f.Get("MaxResults"); mr != "" {
			if n, _ := strconv.Atoi(mr); n < 5 || n > 1000 {
				ec2Err(w, 400, "InvalidParameterValue", "MaxResults must be between 5 and 1000")
				return
			}
		}
		owners := formList(f, "Owner")
		var live []*indSnap
		for _, id := range s.snapOrder {
			if sn := s.snaps[id]; sn != nil {
				live = append(live, sn)
			}
		}
		match, ok := describeMatches(w, f, live, func(sn *indSnap) bool { return len(owners) == 0 || in(owners, "self") || in(owners, sn.owner) })
		if !ok {
			return
		}
		start, end, next := page(f.Get("NextToken"), "snaps-", 2, len(match))
		var b strings.Builder
		b.WriteString("<snapshotSet>")
		for _, sn := range match[start:end] {
			fmt.Fprintf(&b, "<item><snapshotId>%s</snapshotId><volumeId>%s</volumeId><status>%s</status><startTime>%s</startTime><progress>100%%</progress><ownerId>%s</ownerId><volumeSize>50</volumeSize><description/><encrypted>false</encrypted><storageTier>standard</storageTier>%s</item>",
				sn.id, sn.vol, sn.status(), sn.start.UTC().Format("2006-01-02T15:04:05.000Z"), sn.owner, tagXML(sn.tags))
		}
		b.WriteString("</snapshotSet>")
		b.WriteString(nextTokenXML(next))
		s.ec2OK(w, action, b.String())

	case "DeleteSnapshot":
		id := f.Get("SnapshotId")
		sn := s.snaps[id]
		if sn == nil {
			ec2Err(w, 400, "InvalidSnapshot.NotFound", fmt.Sprintf("The snapshot '%s' does not exist.", id))
			return
		}
		if sn.inUse {
			ec2Err(w, 400, "InvalidSnapshot.InUse", fmt.Sprintf("The snapshot %s is currently in use by ami-0123456789abcdef0", id))
			return
		}
		delete(s.snaps, id)
		s.deleted = append(s.deleted, id)
		s.ec2OK(w, action, "<return>true</return>")

	case "DescribeVolumes":
		// Retention looks for verify volumes before pruning; no verification
		// runs here, so there are none.
		s.ec2OK(w, action, "<volumeSet/>")

	default:
		ec2Err(w, 400, "InvalidAction", "The action "+action+" is not valid for this web service.")
	}
}

func (s *indStandIn) specTags(f url.Values) (map[string]string, string) {
	tags := map[string]string{}
	for i := 1; ; i++ {
		rt, ok := f[fmt.Sprintf("TagSpecification.%d.ResourceType", i)]
		if !ok {
			break
		}
		if rt[0] != "snapshot" {
			return nil, "InvalidParameterValue"
		}
		for k, v := range formTags(f, fmt.Sprintf("TagSpecification.%d.Tag", i)) {
			tags[k] = v
		}
	}
	return tags, checkTags(tags)
}

func (s *indStandIn) create(inst *indInstance, vol string, tags map[string]string, api string, now time.Time) *indSnap {
	t := map[string]string{}
	for k, v := range tags {
		t[k] = v
	}
	sn := &indSnap{id: s.newID("snap-"), vol: vol, inst: inst.id, owner: "210987654321", api: api, start: now, tags: t}
	if h := inst.hold(); h.active(now) {
		sn.heldRun = h.runID
	}
	s.snaps[sn.id] = sn
	s.snapOrder = append(s.snapOrder, sn.id)
	return sn
}

// ---- SSM JSON 1.1 ----

func ssmErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", "7f1c3f7e-0000-4000-8000-000000000000")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"__type": code, "Message": msg})
	_, _ = w.Write(b)
}

func ssmOK(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	b, _ := json.Marshal(v)
	_, _ = w.Write(b)
}

func (s *indStandIn) serveSSM(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	nth := s.call("ssm:" + action)
	now := time.Now()
	switch action {
	case "DescribeInstanceInformation":
		if nth == 1 {
			ssmErr(w, 400, "ThrottlingException", "Rate exceeded")
			return
		}
		var req struct {
			Filters []struct {
				Key    string
				Values []string
			}
			MaxResults int
			NextToken  string
		}
		_ = json.Unmarshal(body, &req)
		if req.MaxResults != 0 && (req.MaxResults < 5 || req.MaxResults > 50) {
			ssmErr(w, 400, "ValidationException", "1 validation error detected: Value at 'maxResults' failed to satisfy constraint")
			return
		}
		var ids []string
		for _, fl := range req.Filters {
			if fl.Key != "InstanceIds" {
				ssmErr(w, 400, "InvalidInstanceInformationFilterValue", "unsupported filter "+fl.Key)
				return
			}
			ids = append(ids, fl.Values...)
		}
		var list []map[string]any
		for _, inst := range s.insts {
			if inst.ping == "" || (len(ids) > 0 && !in(ids, inst.id)) {
				continue
			}
			list = append(list, map[string]any{"InstanceId": inst.id, "PingStatus": inst.ping, "LastPingDateTime": float64(now.Unix()), "AgentVersion": "3.3.1142.0",
				"IsLatestVersion": false, "PlatformType": "Linux", "PlatformName": "Amazon Linux", "PlatformVersion": "2023", "ResourceType": "EC2Instance", "IPAddress": "10.0.0.1", "ComputerName": "ip-10-0-0-1.ec2.internal"})
		}
		start, end, next := page(req.NextToken, "ii-", 2, len(list))
		out := map[string]any{"InstanceInformationList": list[start:end]}
		if next != "" {
			out["NextToken"] = next
		}
		ssmOK(w, out)

	case "SendCommand":
		var req struct {
			DocumentName   string
			InstanceIds    []string
			Parameters     map[string][]string
			TimeoutSeconds *int
		}
		if err := json.Unmarshal(body, &req); err != nil {
			ssmErr(w, 400, "SerializationException", err.Error())
			return
		}
		if req.DocumentName != "Quiesce" {
			ssmErr(w, 400, "InvalidDocument", "Document with name "+req.DocumentName+" does not exist.")
			return
		}
		if req.TimeoutSeconds != nil && (*req.TimeoutSeconds < 30 || *req.TimeoutSeconds > 2592000) {
			ssmErr(w, 400, "ValidationException", "TimeoutSeconds out of range")
			return
		}
		params := map[string]string{}
		for k, v := range req.Parameters {
			if len(v) != 1 {
				ssmErr(w, 400, "InvalidParameters", "parameter "+k+" must have exactly one value")
				return
			}
			params[k] = v[0]
		}
		if _, _, err := s.doc.Render(params); err != nil {
			ssmErr(w, 400, "InvalidParameters", err.Error())
			return
		}
		if len(req.InstanceIds) != 1 {
			s.problem("SendCommand to %d instances", len(req.InstanceIds))
		}
		inst := s.instance(req.InstanceIds[0])
		if inst == nil || inst.ping == "" {
			ssmErr(w, 400, "InvalidInstanceId", "Instances not in a valid state for account")
			return
		}
		if inst.ping != "Online" || inst.state != "running" {
			s.problem("SendCommand %s to %s which is %s/%s", params["action"], inst.id, inst.state, inst.ping)
		}
		if ms, err := strconv.Atoi(inst.tags["indie:throttle-thaw-ms"]); err == nil && params["action"] == "thaw" {
			since, ok := s.thawThrottledSince[inst.id]
			if !ok {
				since = now
				s.thawThrottledSince[inst.id] = now
			}
			if now.Sub(since) < time.Duration(ms)*time.Millisecond {
				ssmErr(w, 400, "ThrottlingException", "Rate exceeded")
				return
			}
		}
		key := inst.id + "/" + params["action"]
		if params["action"] == "freeze" && !s.sendThrottled[key] {
			s.sendThrottled[key] = true
			ssmErr(w, 400, "ThrottlingException", "Rate exceeded")
			return
		}
		c := &indCmd{id: fmt.Sprintf("%08x-1111-4222-8333-%012x", s.seq, now.UnixNano()&0xffffffffffff), inst: inst.id, action: params["action"], params: req.Parameters}
		s.seq++
		s.runHost(inst, c, params, now)
		s.cmds[c.id+"/"+inst.id] = c
		ssmOK(w, map[string]any{"Command": map[string]any{"CommandId": c.id, "DocumentName": "Quiesce", "DocumentVersion": "$DEFAULT", "InstanceIds": req.InstanceIds,
			"Parameters": req.Parameters, "Status": "Pending", "StatusDetails": "Pending", "RequestedDateTime": float64(now.UnixMilli()) / 1000, "TargetCount": 1,
			"TimeoutSeconds": 3600, "DeliveryTimedOutCount": 0, "CompletedCount": 0, "ErrorCount": 0, "MaxConcurrency": "50", "MaxErrors": "0"}})

	case "GetCommandInvocation":
		if nth == 5 {
			ssmErr(w, 400, "ThrottlingException", "Rate exceeded")
			return
		}
		var req struct{ CommandId, InstanceId string }
		_ = json.Unmarshal(body, &req)
		c := s.cmds[req.CommandId+"/"+req.InstanceId]
		if c == nil {
			ssmErr(w, 400, "InvalidCommandId", "no such command")
			return
		}
		c.polls++
		out := map[string]any{"CommandId": c.id, "InstanceId": c.inst, "DocumentName": "Quiesce", "DocumentVersion": "$DEFAULT", "PluginName": "runShellScript",
			"ResponseCode": -1, "StandardOutputContent": "", "StandardErrorContent": "", "StandardOutputUrl": "", "StandardErrorUrl": "",
			"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false}}
		switch {
		case c.polls <= 3:
			ssmErr(w, 400, "InvocationDoesNotExist", "")
			return
		case c.polls == 4:
			out["Status"], out["StatusDetails"] = "Pending", "Pending"
		case c.polls == 5 || c.hang:
			out["Status"], out["StatusDetails"] = "InProgress", "InProgress"
			out["ExecutionStartDateTime"] = now.UTC().Format("2006-01-02T15:04:05.000Z")
		default:
			out["Status"], out["StatusDetails"] = c.status, c.status
			out["ResponseCode"] = c.code
			out["StandardOutputContent"], out["StandardErrorContent"] = c.stdout, c.stderr
			out["ExecutionStartDateTime"] = now.UTC().Format("2006-01-02T15:04:05.000Z")
			out["ExecutionEndDateTime"] = now.UTC().Format("2006-01-02T15:04:05.000Z")
			out["ExecutionElapsedTime"] = "PT0.042S"
		}
		ssmOK(w, out)

	default:
		ssmErr(w, 400, "UnknownOperationException", action)
	}
}

// runHost plays hostagent behind the document, at the moment SSM delivers
// the command (here: when it is sent).
func (s *indStandIn) runHost(inst *indInstance, c *indCmd, p map[string]string, now time.Time) {
	result := func(code contract.ExitCode, v any) {
		b, _ := json.Marshal(v)
		c.code, c.stdout, c.status = int(code), string(b)+"\n", "Success"
		if code != 0 {
			c.status = "Failed"
			c.stderr = "failed to run commands: exit status " + strconv.Itoa(int(code))
		}
	}
	switch p["action"] {
	case "freeze":
		if h := inst.hold(); h.active(now) {
			result(contract.ExitBusy, contract.ErrorReport{Error: "busy", ExitCode: contract.ExitBusy})
			return
		}
		if inst.freeze == "lockwait" {
			result(contract.ExitLockWait, contract.ErrorReport{RunID: p["runId"], Error: "FLUSH TABLES WITH READ LOCK: Lock wait timeout exceeded; try restarting transaction (lock_wait 5s)", ExitCode: contract.ExitLockWait})
			return
		}
		timeout, err := time.ParseDuration(p["timeout"])
		if err != nil {
			result(contract.ExitUsage, contract.ErrorReport{Error: "bad timeout", ExitCode: contract.ExitUsage})
			return
		}
		h := &indHold{runID: p["runId"], start: now, deadline: now.Add(timeout)}
		inst.holds = append(inst.holds, h)
		mode := p["mysqlLock"]
		if mode == "auto" {
			mode = inst.lockMode
		}
		fr := contract.FreezeReport{RunID: p["runId"], Hostname: "ip-10-0-0-1", InstanceID: inst.id, StartedAt: now, FrozenAt: now, Deadline: h.deadline, TimeoutMS: timeout.Milliseconds(),
			Lock: contract.LockInfo{Mode: mode, Requested: p["mysqlLock"], AcquiredMS: 0.8}, HolderPID: 999, GuardianPID: 1000}
		if mode != contract.LockNone {
			fr.Lock.BinlogFile, fr.Lock.BinlogPos, fr.Lock.GTIDExecuted = "binlog.000117", 91827364, inst.gtid
		}
		for i, m := range strings.Split(p["mounts"], ",") {
			fr.Mounts = append(fr.Mounts, contract.MountReport{Path: m, FSType: "xfs", Device: fmt.Sprintf("/dev/nvme%dn1", i+1), VolumeIDs: inst.mountVols[m], FreezeMS: 4})
		}
		result(0, fr)
		c.hang = inst.freeze == "hang"
	case "thaw":
		h := inst.hold()
		tr := contract.ThawReport{RunID: p["runId"], ThawedBy: contract.ThawedByCommand, MySQLUnlocked: true, ThawedAt: now}
		switch {
		case h == nil || !h.end.IsZero() || h.runID != p["runId"]:
			result(0, tr)
		case !now.Before(h.deadline):
			h.end, h.endedBy = h.deadline, contract.ThawedByDeadline
			tr.ThawedBy, tr.Late, tr.ThawedAt = contract.ThawedByDeadline, true, h.deadline
			tr.HeldMS = float64(h.deadline.Sub(h.start).Milliseconds())
			result(contract.ExitLate, tr)
		default:
			h.end, h.endedBy = now, contract.ThawedByCommand
			tr.HeldMS = float64(now.Sub(h.start).Milliseconds())
			if inst.lockLost != "" {
				tr.LockLost = &contract.LockLoss{At: now, AfterMS: tr.HeldMS / 2, Reason: inst.lockLost}
			}
			for m := range inst.mountVols {
				tr.Mounts = append(tr.Mounts, contract.MountThaw{Path: m, Thawed: true})
			}
			result(0, tr)
		}
	case "check":
		cr := contract.CheckReport{OK: true, Lock: contract.LockInfo{Mode: inst.lockMode}}
		for _, m := range strings.Split(p["mounts"], ",") {
			cr.Mounts = append(cr.Mounts, contract.MountReport{Path: m, FSType: "xfs", Device: "/dev/nvme1n1", VolumeIDs: inst.mountVols[m]})
		}
		result(0, cr)
	default:
		result(contract.ExitUsage, contract.ErrorReport{Error: "unknown action", ExitCode: 2})
	}
}

// servers returns separate EC2 and SSM endpoints (so a client sent to the
// wrong one fails).
func (s *indStandIn) servers(t *testing.T) (ec2URL, ssmURL string) {
	e := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "" {
			http.Error(w, "SSM request sent to the EC2 endpoint", 400)
			return
		}
		s.serveEC2(w, r)
	}))
	m := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.") || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
			http.Error(w, "not an SSM JSON 1.1 request", 400)
			return
		}
		s.serveSSM(w, r)
	}))
	t.Cleanup(func() { e.Close(); m.Close() })
	return e.URL, m.URL
}

// ---- the checks ----

const (
	indA = "i-0a00000000000000a" // two data mounts on two volumes, plus an unfrozen third data volume
	indB = "i-0b00000000000000b" // MySQL lock times out (exit 5)
	indC = "i-0c00000000000000c" // stopped
	indD = "i-0d00000000000000d" // SSM ConnectionLost
	indE = "i-0e00000000000000e" // one volume; first CreateSnapshot hits the per-volume rate
	indF = "i-0f00000000000000f" // CreateSnapshots throttled past the freeze deadline
	indG = "i-0900000000000000a" // freeze command never finishes (outcome unknown)
	indH = "i-0700000000000000c" // CreateSnapshot response slower than the freeze deadline (the snapshot exists)
	indI = "i-0600000000000000d" // thaw throttled past hostagent's deadline: thaw is late
	indJ = "i-0500000000000000e" // CreateSnapshot processed only after the Lambda gave up on the call (and thawed)
	indX = "i-0800000000000000b" // not tagged: must not be touched
)

func longGTID() string {
	var parts []string
	for i := 0; i < 9; i++ {
		parts = append(parts, fmt.Sprintf("3e11fa47-71ca-11e1-9e33-c80aa94295%02d:1-%d", i, 1000+i))
	}
	return strings.Join(parts, ",")
}

func (s *indStandIn) fleet() {
	enabled := func(extra map[string]string) map[string]string {
		m := map[string]string{"backup": "quiesce", "Name": "db"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	s.insts = []*indInstance{
		{id: indA, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", gtid: longGTID(), freeze: "ok",
			tags:      enabled(map[string]string{"quiesce:mounts": "/var/lib/mysql,/var/lib/mysql-binlog", "Name": "db-a"}),
			devices:   [][2]string{{"/dev/xvda", "vol-0a0000000000000r0"}, {"/dev/sdf", "vol-0a0000000000000d1"}, {"/dev/sdg", "vol-0a0000000000000d2"}, {"/dev/sdh", "vol-0a0000000000000d3"}},
			mountVols: map[string][]string{"/var/lib/mysql": {"vol-0a0000000000000d1"}, "/var/lib/mysql-binlog": {"vol-0a0000000000000d2"}}},
		{id: indB, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", freeze: "lockwait", tags: enabled(nil),
			devices: [][2]string{{"/dev/xvda", "vol-0b0000000000000r0"}, {"/dev/sdf", "vol-0b0000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-0b0000000000000d1"}}},
		{id: indC, state: "stopped", ping: "ConnectionLost", root: "/dev/xvda", tags: enabled(nil), devices: [][2]string{{"/dev/xvda", "vol-0c0000000000000r0"}}},
		{id: indD, state: "running", ping: "ConnectionLost", root: "/dev/xvda", tags: enabled(nil), devices: [][2]string{{"/dev/xvda", "vol-0d0000000000000r0"}, {"/dev/sdf", "vol-0d0000000000000d1"}}},
		{id: indE, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "none", freeze: "ok", tags: enabled(map[string]string{"indie:per-volume-once": "true", "quiesce:mysql-lock": "none"}),
			devices: [][2]string{{"/dev/xvda", "vol-0e0000000000000r0"}, {"/dev/sdf", "vol-0e0000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-0e0000000000000d1"}}},
		{id: indF, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "backup-stage", freeze: "ok", tags: enabled(map[string]string{"quiesce:mounts": "/data,/logs", "quiesce:freeze-timeout": "2s"}),
			devices:   [][2]string{{"/dev/xvda", "vol-0f0000000000000r0"}, {"/dev/sdf", "vol-0f0000000000000d1"}, {"/dev/sdg", "vol-0f0000000000000d2"}},
			mountVols: map[string][]string{"/data": {"vol-0f0000000000000d1"}, "/logs": {"vol-0f0000000000000d2"}}},
		{id: indG, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", freeze: "hang", tags: enabled(map[string]string{"quiesce:freeze-timeout": "2s"}),
			devices: [][2]string{{"/dev/xvda", "vol-090000000000000r0"}, {"/dev/sdf", "vol-090000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-090000000000000d1"}}},
		{id: indH, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", gtid: "0-1-7", freeze: "ok", tags: enabled(map[string]string{"quiesce:freeze-timeout": "2s", "indie:response-delay-ms": "2500"}),
			devices: [][2]string{{"/dev/xvda", "vol-070000000000000r0"}, {"/dev/sdf", "vol-070000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-070000000000000d1"}}},
		{id: indI, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", gtid: "0-1-8", freeze: "ok", tags: enabled(map[string]string{"quiesce:freeze-timeout": "2s", "indie:throttle-thaw-ms": "2500"}),
			devices: [][2]string{{"/dev/xvda", "vol-060000000000000r0"}, {"/dev/sdf", "vol-060000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-060000000000000d1"}}},
		{id: indJ, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", gtid: "0-1-9", freeze: "ok", tags: enabled(map[string]string{"quiesce:freeze-timeout": "2s", "indie:create-delay-ms": "2500"}),
			devices: [][2]string{{"/dev/xvda", "vol-050000000000000r0"}, {"/dev/sdf", "vol-050000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-050000000000000d1"}}},
		{id: indX, state: "running", ping: "Online", root: "/dev/xvda", freeze: "ok", tags: map[string]string{"Name": "web"}, devices: [][2]string{{"/dev/xvda", "vol-080000000000000r0"}}},
	}
	s.alwaysThrottleCreateSnapshots[indF] = true
}

// resultOf extracts the result JSON from a RunError response.
func resultOf(t *testing.T, resp map[string]any) (map[string]any, string) {
	t.Helper()
	if resp["errorType"] == nil {
		return resp, ""
	}
	msg := fmt.Sprint(resp["errorMessage"])
	i := strings.Index(msg, " result=")
	if i < 0 {
		t.Fatalf("error response without a result: %v", resp)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(msg[i+len(" result="):]), &res); err != nil {
		t.Fatalf("result in error message: %v", err)
	}
	return res, fmt.Sprint(resp["errorType"])
}

func TestIndependentStandIn(t *testing.T) {
	s := newIndStandIn(t)
	s.fleet()
	// Retention fixtures on vol d1 of instance A: three older snapshots of
	// this stack (one used by an AMI), one of another stack, one untagged;
	// and one old snapshot of B's volume (B fails: must be kept).
	volA1, volB1 := "vol-0a0000000000000d1", "vol-0b0000000000000d1"
	oldA := []string{
		s.seedSnapshot(volA1, 72*time.Hour, map[string]string{"quiesce:stack": "rie-stack", "quiesce:run-id": "old-1", "quiesce:consistency": "application"}, false),
		s.seedSnapshot(volA1, 48*time.Hour, map[string]string{"quiesce:stack": "rie-stack", "quiesce:run-id": "old-2", "quiesce:consistency": "application"}, true),
		s.seedSnapshot(volA1, 24*time.Hour, map[string]string{"quiesce:stack": "rie-stack", "quiesce:run-id": "old-3", "quiesce:consistency": "application"}, false),
	}
	other := s.seedSnapshot(volA1, 96*time.Hour, map[string]string{"quiesce:stack": "other-stack"}, false)
	untagged := s.seedSnapshot(volA1, 96*time.Hour, map[string]string{"team": "db"}, false)
	oldB := s.seedSnapshot(volB1, 72*time.Hour, map[string]string{"quiesce:stack": "rie-stack", "quiesce:run-id": "old-b"}, false)

	ec2URL, ssmURL := s.servers(t)
	r := startRIE(t, ec2URL, "AWS_ENDPOINT_URL_SSM="+ssmURL, "QUIESCE_TARGET_TAG_KEY=backup", "QUIESCE_TARGET_TAG_VALUE=quiesce",
		"QUIESCE_MOUNTS=/data", "QUIESCE_KEEP_LAST=1", "QUIESCE_FREEZE_TIMEOUT=4s")

	// A bare EventBridge (rules) scheduled event: everything from the environment.
	resp := r.invoke(t, `{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"210987654321","time":"2026-11-25T21:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:210987654321:rule/quiesce"],"detail":{}}`)
	res, errType := resultOf(t, resp)
	raw, _ := json.MarshalIndent(res, "", " ")
	t.Logf("result: %s", raw)
	if errType != "RunError" {
		t.Errorf("errorType = %q, want RunError (instances failed)", errType)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.problems {
		t.Errorf("stand-in saw: %s", p)
	}
	runID, _ := res["run_id"].(string)
	byID := map[string]map[string]any{}
	for _, x := range res["instances"].([]any) {
		m := x.(map[string]any)
		byID[m["instance_id"].(string)] = m
	}
	want := map[string]string{indA: "ok", indB: "failed", indC: "skipped", indD: "failed", indE: "ok", indF: "failed", indG: "failed", indH: "failed", indI: "ok", indJ: "failed"}
	// Consistency each instance's snapshots must carry.
	wantConsistency := map[string]string{indA: "application", indE: "application", indH: "crash", indI: "application", indJ: "crash"}
	// Hold endings the stand-in must see.
	wantEnd := map[string]string{indI: contract.ThawedByDeadline}
	for id, st := range want {
		got := byID[id]
		if got == nil {
			t.Errorf("%s missing from the result", id)
			continue
		}
		if got["status"] != st {
			t.Errorf("%s status = %v (%v), want %s", id, got["status"], got["reason"], st)
		}
		if st != "ok" && fmt.Sprint(got["reason"]) == "" {
			t.Errorf("%s: no reason", id)
		}
	}
	if byID[indX] != nil {
		t.Errorf("untagged instance %s is in the result", indX)
	}
	if !strings.Contains(fmt.Sprint(byID[indC]["reason"]), "stopped") {
		t.Errorf("stopped instance reason = %v", byID[indC]["reason"])
	}
	if !strings.Contains(fmt.Sprint(byID[indD]["reason"]), "ConnectionLost") {
		t.Errorf("ConnectionLost instance reason = %v", byID[indD]["reason"])
	}
	// The freeze that never finished: the reason says what SSM last said
	// (InProgress), not an InvocationDoesNotExist from the first polls.
	if r := fmt.Sprint(byID[indG]["reason"]); !strings.Contains(r, "InProgress") || strings.Contains(r, "InvocationDoesNotExist") {
		t.Errorf("hung freeze reason = %s", r)
	}
	if !strings.Contains(fmt.Sprint(byID[indB]["reason"]), "lock") {
		t.Errorf("lock-wait instance reason = %v", byID[indB]["reason"])
	}

	// Commands: what was sent where.
	actions := map[string][]string{}
	var cmdIDs []string
	for k := range s.cmds {
		cmdIDs = append(cmdIDs, k)
	}
	sort.Strings(cmdIDs)
	for _, k := range cmdIDs {
		c := s.cmds[k]
		actions[c.inst] = append(actions[c.inst], c.action)
	}
	for _, id := range []string{indC, indD, indX} {
		if len(actions[id]) > 0 {
			t.Errorf("%s got commands %v", id, actions[id])
		}
	}
	// Thaw whenever a freeze may have happened; no hold may be left.
	for _, inst := range s.insts {
		for _, h := range inst.holds {
			if h.end.IsZero() {
				t.Errorf("%s: freeze of run %s never thawed (deadline %v)", inst.id, h.runID, h.deadline)
			} else if we := cmp.Or(wantEnd[inst.id], contract.ThawedByCommand); h.endedBy != we {
				t.Errorf("%s: hold ended by %s", inst.id, h.endedBy)
			}
			if h.runID != runID {
				t.Errorf("%s: hold for run %q, result run %q", inst.id, h.runID, runID)
			}
		}
		if res := byID[inst.id]; res != nil && len(inst.holds) > 0 && res["thaw_sent"] != true {
			t.Errorf("%s: thaw_sent = %v after a freeze", inst.id, res["thaw_sent"])
		}
	}
	if len(s.instance(indG).holds) != 1 || len(s.instance(indF).holds) != 1 || len(s.instance(indB).holds) != 0 {
		t.Errorf("holds: G %d F %d B %d", len(s.instance(indG).holds), len(s.instance(indF).holds), len(s.instance(indB).holds))
	}

	// Snapshots of this run versus the result and the holds.
	resultSnaps := map[string]map[string]any{}
	for _, x := range res["instances"].([]any) {
		m := x.(map[string]any)
		if ss, ok := m["snapshots"].([]any); ok {
			for _, y := range ss {
				sm := y.(map[string]any)
				resultSnaps[sm["snapshot_id"].(string)] = sm
			}
		}
	}
	fullGTID := longGTID()
	perInst := map[string][]string{}
	for _, id := range s.snapOrder {
		sn := s.snaps[id]
		if sn == nil || sn.seeded {
			continue
		}
		perInst[sn.inst] = append(perInst[sn.inst], sn.vol)
		inst := s.instance(sn.inst)
		_, dev := s.volumeOwner(sn.vol)
		tg := sn.tags
		rs := resultSnaps[id]
		if rs == nil {
			t.Errorf("snapshot %s (%s) created but not in the result", id, sn.vol)
		} else if rs["consistency"] != tg["quiesce:consistency"] || rs["volume_id"] != sn.vol {
			t.Errorf("snapshot %s: result says %v/%v, tags say %v/%v", id, rs["volume_id"], rs["consistency"], sn.vol, tg["quiesce:consistency"])
		}
		var mounts []string
		for m, vs := range inst.mountVols {
			if in(vs, sn.vol) {
				mounts = append(mounts, m)
			}
		}
		checks := map[string]string{"quiesce:stack": "rie-stack", "quiesce:run-id": runID, "quiesce:instance": sn.inst, "quiesce:device": dev, "quiesce:mounts": strings.Join(mounts, ",")}
		for k, v := range checks {
			if tg[k] != v {
				t.Errorf("snapshot %s of %s: tag %s = %q, want %q", id, sn.vol, k, tg[k], v)
			}
		}
		switch tg["quiesce:consistency"] {
		case "application":
			if sn.heldRun != runID {
				t.Errorf("snapshot %s of %s tagged application but no freeze of run %s held when it was taken", id, sn.vol, runID)
			}
		case "crash":
		default:
			t.Errorf("snapshot %s: consistency tag %q", id, tg["quiesce:consistency"])
		}
		if wc := wantConsistency[sn.inst]; tg["quiesce:consistency"] != wc {
			t.Errorf("snapshot %s of %s is tagged %s (%s), want %s", id, sn.vol, tg["quiesce:consistency"], tg["quiesce:note"], wc)
		}
		mode := inst.lockMode
		if l := inst.tags["quiesce:mysql-lock"]; l != "" {
			mode = l
		}
		if tg["quiesce:lock"] != mode {
			t.Errorf("snapshot %s: quiesce:lock = %q, want %q", id, tg["quiesce:lock"], mode)
		}
		if mode != "none" {
			if tg["quiesce:binlog-file"] != "binlog.000117" || tg["quiesce:binlog-pos"] != "91827364" {
				t.Errorf("snapshot %s: binlog tags %q/%q", id, tg["quiesce:binlog-file"], tg["quiesce:binlog-pos"])
			}
			g := tg["quiesce:gtid"]
			if inst.gtid != "" && (g == "" || utf8.RuneCountInString(g) > 256) {
				t.Errorf("snapshot %s: gtid tag %q", id, g)
			}
			if inst.gtid == fullGTID {
				kept := strings.SplitN(g, " ", 2)[0]
				if !strings.HasPrefix(fullGTID, kept) || !strings.Contains(g, "truncated") || strings.HasSuffix(kept, ",") {
					t.Errorf("snapshot %s: truncated gtid tag %q is not a clean prefix of the set", id, g)
				}
			}
		} else if tg["quiesce:binlog-file"] != "" || tg["quiesce:gtid"] != "" {
			t.Errorf("snapshot %s: binlog tags without a lock: %v", id, tg)
		}
	}
	if got := strings.Join(perInst[indA], ","); got != "vol-0a0000000000000d1,vol-0a0000000000000d2" {
		t.Errorf("instance A snapshotted volumes %q, want d1,d2 (not the root, not the unfrozen d3)", got)
	}
	if got := strings.Join(perInst[indE], ","); got != "vol-0e0000000000000d1" {
		t.Errorf("instance E snapshotted %q", got)
	}
	for _, id := range []string{indB, indC, indD, indG, indX, indF} {
		if len(perInst[id]) > 0 {
			t.Errorf("%s has snapshots %v", id, perInst[id])
		}
	}
	if got := strings.Join(perInst[indH], ","); got != "vol-070000000000000d1" {
		t.Errorf("instance H snapshotted %q", got)
	}
	if byID[indI]["thaw_late"] != true || byID[indI]["thawed_by_deadline"] != true {
		t.Errorf("instance I: thaw_late %v thawed_by_deadline %v", byID[indI]["thaw_late"], byID[indI]["thawed_by_deadline"])
	}
	for id, wc := range wantConsistency {
		if byID[id]["consistency"] != wc {
			t.Errorf("%s consistency = %v (%v)", id, byID[id]["consistency"], byID[id]["consistency_note"])
		}
	}

	// Retention: keep_last=1 on the volumes of instances that succeeded,
	// this stack only; the AMI's snapshot is reported, not deleted; this
	// run's snapshot is still pending, so the newest completed one (old-3)
	// stays until it completes.
	sort.Strings(s.deleted)
	wantDeleted := []string{oldA[0]}
	sort.Strings(wantDeleted)
	if strings.Join(s.deleted, ",") != strings.Join(wantDeleted, ",") {
		t.Errorf("deleted %v, want %v (other stack %s, untagged %s, failed instance's %s must stay)", s.deleted, wantDeleted, other, untagged, oldB)
	}
	ret, _ := res["retention"].(map[string]any)
	if ret == nil || fmt.Sprint(ret["in_use"]) != fmt.Sprint([]any{oldA[1]}) {
		t.Errorf("retention = %v, want in_use [%s]", ret, oldA[1])
	}

	// Logs: EMF metric lines and no secret.
	out := r.Logs()
	for _, m := range []string{`"freeze_window_ms"`, `"snapshot_call_ms"`, `"instances_ok"`, `"instances_failed"`, `"thawed_by_deadline"`, `"snapshots_pruned"`, `"CloudWatchMetrics"`} {
		if !strings.Contains(out, m) {
			t.Errorf("no EMF %s in the output", m)
		}
	}
	if !strings.Contains(out, `"Stack":"rie-stack"`) {
		t.Errorf("EMF lines lack the Stack dimension value")
	}
	if strings.Contains(out, "local-secret") {
		t.Errorf("the secret access key appears in the logs")
	}
	s.mu.Unlock()
	checkBadEventsAndDryRun(t, s, r)
	s.mu.Lock()
}

func checkBadEventsAndDryRun(t *testing.T, s *indStandIn, r *rie) {
	count := func() (send, snap, del int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, q := range s.requests {
			switch q {
			case "ssm:SendCommand":
				send++
			case "ec2:CreateSnapshot", "ec2:CreateSnapshots":
				snap++
			case "ec2:DeleteSnapshot":
				del++
			}
		}
		return
	}
	send0, snap0, del0 := count()
	for _, tt := range []struct{ event, field string }{
		{`{"targets":{"instance_ids":["i-nope"]}}`, `targets.instance_ids[0] "i-nope"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"mounts":["var/lib/mysql"]}`, `mounts[0] "var/lib/mysql"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"freeze_timeout":"30"}`, `freeze_timeout "30"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"mysql":{"lock":"flush"}}`, `mysql.lock "flush"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"retention":{"keep_last":-1}}`, `retention.keep_last "-1"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"max_concurrency":0}`, `max_concurrency "0"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"mount":["/data"]}`, `unknown field "mount"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"snapshot_tags":{"quiesce:consistency":"application"}}`, `snapshot_tags "quiesce:consistency"`},
		{`{"targets":{"instance_ids":["` + indA + `"]},"dry_run":"yes"}`, `dry_run`},
		{`[1,2]`, `event`},
	} {
		resp := r.invoke(t, tt.event)
		if resp["errorType"] != "ValidationError" || !strings.Contains(fmt.Sprint(resp["errorMessage"]), tt.field) {
			t.Errorf("event %s: response %v, want a ValidationError naming %s", tt.event, resp, tt.field)
		}
	}
	if send, snap, del := count(); send != send0 || snap != snap0 || del != del0 {
		t.Errorf("bad events caused AWS calls: SendCommand %d→%d, snapshots %d→%d, deletes %d→%d", send0, send, snap0, snap, del0, del)
	}

	// Dry run: only `check`, nothing frozen, created or deleted.
	resp := r.invoke(t, `{"targets":{"instance_ids":["`+indA+`","`+indE+`"]},"dry_run":true,"retention":{"keep_last":1}}`)
	if resp["errorType"] != nil {
		t.Fatalf("dry run failed: %v", resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var dryActions []string
	for _, c := range s.cmds {
		if c.params["runId"][0] == resp["run_id"] {
			dryActions = append(dryActions, c.inst+":"+c.action)
		}
	}
	sort.Strings(dryActions)
	if strings.Join(dryActions, " ") != indA+":check "+indE+":check" {
		t.Errorf("dry run sent %v", dryActions)
	}
	_, snap1, del1 := 0, 0, 0
	for _, q := range s.requests {
		switch q {
		case "ec2:CreateSnapshot", "ec2:CreateSnapshots":
			snap1++
		case "ec2:DeleteSnapshot":
			del1++
		}
	}
	if snap1 != snap0 || del1 != del0 {
		t.Errorf("dry run created/deleted snapshots")
	}
}

// The EventBridge Scheduler's own default event (no input configured) falls
// back to the environment like the rules' scheduled event.
func TestIndependentSchedulerEvent(t *testing.T) {
	s := newIndStandIn(t)
	s.insts = []*indInstance{{id: indE, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", gtid: "0-1-99", freeze: "ok", tags: map[string]string{"backup": "quiesce"},
		devices: [][2]string{{"/dev/xvda", "vol-0e0000000000000r0"}, {"/dev/sdf", "vol-0e0000000000000d1"}}, mountVols: map[string][]string{"/data": {"vol-0e0000000000000d1"}}}}
	ec2URL, ssmURL := s.servers(t)
	// No QUIESCE_STACK: the function's name is the stack, for the tags and
	// for the metrics' Stack dimension alike.
	r := startRIE(t, ec2URL, "AWS_ENDPOINT_URL_SSM="+ssmURL, "QUIESCE_TARGET_TAG_KEY=backup", "QUIESCE_TARGET_TAG_VALUE=quiesce", "QUIESCE_MOUNTS=/data",
		"QUIESCE_STACK=", "AWS_LAMBDA_FUNCTION_NAME=quiesce-fn")
	resp := r.invoke(t, `{"version":"0","id":"0b0f3d35-8f0c-4d43-a3a4-7f1b9d0e9e1d","detail-type":"Scheduled Event","source":"aws.scheduler","account":"210987654321","time":"2026-11-25T21:00:00Z","region":"us-east-1","resources":["arn:aws:scheduler:us-east-1:210987654321:schedule/default/quiesce"],"detail":"{}"}`)
	if resp["errorType"] != nil || resp["instances_ok"] != float64(1) {
		t.Fatalf("scheduler event: %v", resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var snaps []*indSnap
	for _, sn := range s.snaps {
		snaps = append(snaps, sn)
	}
	if len(snaps) != 1 || snaps[0].tags["quiesce:consistency"] != "application" || snaps[0].tags["quiesce:mounts"] != "/data" || snaps[0].tags["quiesce:gtid"] != "0-1-99" {
		t.Fatalf("snapshots: %+v", snaps)
	}
	stack := snaps[0].tags["quiesce:stack"]
	if stack == "" || resp["stack"] != stack {
		t.Fatalf("stack tag %q, result stack %v", stack, resp["stack"])
	}
	for _, line := range strings.Split(r.Logs(), "\n") {
		if strings.Contains(line, `"CloudWatchMetrics"`) && !strings.Contains(line, `"Stack":"`+stack+`"`) {
			t.Errorf("EMF line without Stack %q: %s", stack, line)
		}
	}
}

// A manual invoke with every field of the event: what reaches the
// SSM document and the snapshot is what the event said.
func TestIndependentManualEvent(t *testing.T) {
	s := newIndStandIn(t)
	s.insts = []*indInstance{{id: indA, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "backup-stage", gtid: "0-1-5", freeze: "ok", tags: map[string]string{"Name": "db-a"},
		devices:   [][2]string{{"/dev/xvda", "vol-0a0000000000000r0"}, {"/dev/sdf", "vol-0a0000000000000d1"}, {"/dev/sdg", "vol-0a0000000000000d2"}},
		mountVols: map[string][]string{"/var/lib/mysql": {"vol-0a0000000000000d1"}}}}
	old := s.seedSnapshot("vol-0a0000000000000d1", 40*24*time.Hour, map[string]string{"quiesce:stack": "rie-stack"}, false)
	young := s.seedSnapshot("vol-0a0000000000000d1", 2*24*time.Hour, map[string]string{"quiesce:stack": "rie-stack"}, false)
	ec2URL, ssmURL := s.servers(t)
	r := startRIE(t, ec2URL, "AWS_ENDPOINT_URL_SSM="+ssmURL)
	resp := r.invoke(t, `{"targets":{"instance_ids":["`+indA+`"]},"mounts":["/var/lib/mysql"],
		"mysql":{"lock":"backup-stage","defaults_file":"/etc/quiesce/my.cnf","lock_wait":"1500ms","long_query_limit":"30s","kill_long_queries":true},
		"freeze_timeout":"45s","snapshot_tags":{"team":"db","cost-center":"42"},"retention":{"keep_last":0,"max_age":"30d"},
		"max_concurrency":3,"dry_run":false,"run_id":"manual-2026-11-25"}`)
	if resp["errorType"] != nil || resp["run_id"] != "manual-2026-11-25" || resp["instances_ok"] != float64(1) {
		t.Fatalf("response: %v", resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var freeze *indCmd
	for _, c := range s.cmds {
		if c.action == "freeze" {
			freeze = c
		}
	}
	if freeze == nil {
		t.Fatal("no freeze command")
	}
	want := map[string]string{"action": "freeze", "mounts": "/var/lib/mysql", "mysqlLock": "backup-stage", "mysqlDefaultsFile": "/etc/quiesce/my.cnf",
		"lockWait": "1.5s", "longQueryLimit": "30s", "killLongQueries": "true", "timeout": "45s", "runId": "manual-2026-11-25"}
	for k, v := range want {
		if got := freeze.params[k]; len(got) != 1 || got[0] != v {
			t.Errorf("freeze parameter %s = %v, want %q", k, got, v)
		}
	}
	var fresh []*indSnap
	for _, id := range s.snapOrder {
		if sn := s.snaps[id]; sn != nil && !sn.seeded {
			fresh = append(fresh, sn)
		}
	}
	if len(fresh) != 1 || fresh[0].vol != "vol-0a0000000000000d1" {
		t.Fatalf("snapshots: %+v", fresh)
	}
	tg := fresh[0].tags
	for k, v := range map[string]string{"team": "db", "cost-center": "42", "quiesce:run-id": "manual-2026-11-25", "quiesce:lock": "backup-stage", "quiesce:consistency": "application",
		"quiesce:device": "/dev/sdf", "quiesce:gtid": "0-1-5", "quiesce:instance": indA} {
		if tg[k] != v {
			t.Errorf("tag %s = %q, want %q", k, tg[k], v)
		}
	}
	// max_age 30d only: the 40-day-old one goes, the 2-day-old one stays.
	if strings.Join(s.deleted, ",") != old || s.snaps[young] == nil {
		t.Errorf("deleted %v, want only %s", s.deleted, old)
	}
}

// hostagent's thaw says the MySQL lock was lost during the hold: the run
// fails, the snapshot says crash and why, and the result carries the loss.
func TestIndependentLockLost(t *testing.T) {
	s := newIndStandIn(t)
	s.insts = []*indInstance{{id: indA, state: "running", ping: "Online", root: "/dev/xvda", lockMode: "ftwrl", gtid: "0-1-5", freeze: "ok",
		lockLost:  "lock connection killed (thread 42)",
		devices:   [][2]string{{"/dev/xvda", "vol-0a0000000000000r0"}, {"/dev/sdf", "vol-0a0000000000000d1"}},
		mountVols: map[string][]string{"/var/lib/mysql": {"vol-0a0000000000000d1"}}}}
	ec2URL, ssmURL := s.servers(t)
	r := startRIE(t, ec2URL, "AWS_ENDPOINT_URL_SSM="+ssmURL)
	resp := r.invoke(t, `{"targets":{"instance_ids":["`+indA+`"]},"mounts":["/var/lib/mysql"],"freeze_timeout":"30s"}`)
	msg := fmt.Sprint(resp["errorMessage"])
	if resp["errorType"] != "RunError" || !strings.Contains(msg, "MySQL lock lost") || !strings.Contains(msg, `"lock_lost":{`) {
		t.Fatalf("response: %v", resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var fresh []*indSnap
	for _, id := range s.snapOrder {
		if sn := s.snaps[id]; sn != nil && !sn.seeded {
			fresh = append(fresh, sn)
		}
	}
	if len(fresh) != 1 || fresh[0].tags["quiesce:consistency"] != "crash" || !strings.Contains(fresh[0].tags["quiesce:note"], "thread 42") {
		t.Fatalf("snapshots: %+v", fresh)
	}
}
