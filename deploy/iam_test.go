package deploy_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/deploy"
)

type statement struct {
	Sid       string
	Effect    string
	Actions   []string
	Resources []string
	Condition map[string]map[string][]string // operator -> key -> values
}

func stringList(t *testing.T, what string, v any) []string {
	t.Helper()
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, len(x))
		for i, it := range x {
			s, ok := it.(string)
			if !ok {
				t.Fatalf("%s: element %d is %T (%v), not a string", what, i, it, it)
			}
			out[i] = s
		}
		return out
	}
	t.Fatalf("%s: %T (%v) is not a string or list", what, v, v)
	return nil
}

// functionStatements evaluates the template for env and returns every IAM
// statement the function's role gets, failing on anything but inline
// statements (SAM policy templates and managed policies are opaque here).
func functionStatements(t *testing.T, env deploy.Env) []statement {
	t.Helper()
	tpl := readTemplate(t)
	for name := range tpl["Resources"].(map[string]any) {
		typ := tpl.Resource(name)["Type"]
		if s, _ := typ.(string); strings.HasPrefix(s, "AWS::IAM::") {
			t.Errorf("resource %s (%s): all permissions must live in the function's Policies", name, s)
		}
	}
	_, res := evaluate(t, env)
	policies, ok := get(t, res, "QuiesceFunction", "Properties", "Policies").([]any)
	if !ok || len(policies) == 0 {
		t.Fatal("QuiesceFunction.Policies must be a non-empty list of inline policy documents")
	}
	var out []statement
	for i, p := range policies {
		doc, ok := p.(map[string]any)
		if !ok || len(doc) != 1 || doc["Statement"] == nil {
			t.Fatalf("Policies[%d] = %v: only inline {Statement: [...]} documents are allowed", i, p)
		}
		for j, raw := range doc["Statement"].([]any) {
			m := raw.(map[string]any)
			where := fmt.Sprintf("Policies[%d].Statement[%d]", i, j)
			st := statement{Condition: map[string]map[string][]string{}}
			st.Sid, _ = m["Sid"].(string)
			st.Effect, _ = m["Effect"].(string)
			st.Actions = stringList(t, where+".Action", m["Action"])
			st.Resources = stringList(t, where+".Resource", m["Resource"])
			for k := range m {
				switch k {
				case "Sid", "Effect", "Action", "Resource", "Condition":
				default:
					t.Errorf("%s: unexpected element %s (NotAction/NotResource widen a policy)", where, k)
				}
			}
			if c, ok := m["Condition"].(map[string]any); ok {
				for op, kv := range c {
					st.Condition[op] = map[string][]string{}
					for key, val := range kv.(map[string]any) {
						st.Condition[op][key] = stringList(t, where+".Condition."+op+"."+key, val)
					}
				}
			}
			out = append(out, st)
		}
	}
	return out
}

var readOnly = regexp.MustCompile(`^[a-z0-9]+:(Describe|Get|List)[A-Za-z]*$`)

func (s statement) condEquals(key string, want ...string) bool {
	vals, ok := s.Condition["StringEquals"][key]
	if !ok || len(vals) != len(want) {
		return false
	}
	got := append([]string(nil), vals...)
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	return strings.Join(got, "\x00") == strings.Join(w, "\x00")
}

// iamCases are the parameter sets the policy is checked with: the sample
// parameters (every value unlike its default) and the defaults.
var iamCases = []struct {
	name  string
	env   deploy.Env
	rules func(deploy.Env) policyRules
}{
	{"sample parameters", sampleEnv, func(e deploy.Env) policyRules { return newPolicyRules(e, "nightly", "db-verifier", "db-clone-target") }},
	{"defaults", deploy.Env{StackName: "quiesce", Region: "us-east-1", AccountID: "111122223333", Partition: "aws"},
		func(e deploy.Env) policyRules { return newPolicyRules(e, "true", "verifier", "clone-target") }},
}

// Every statement, one by one: no mutating action on "*", and each mutating
// action carries the condition that keeps it to this stack / tagged instances.
func TestIAMLeastPrivilege(t *testing.T) {
	for _, tc := range iamCases {
		t.Run(tc.name, func(t *testing.T) {
			rules := tc.rules(tc.env)
			granted := map[string]bool{}
			roles := map[string]bool{} // "action role" pairs granted on instances
			for _, st := range functionStatements(t, tc.env) {
				for _, p := range rules.problems(st) {
					t.Error(p)
				}
				for _, a := range st.Actions {
					granted[a] = true
					for _, key := range []string{"ssm:resourceTag/" + roleKey, "aws:ResourceTag/" + roleKey} {
						for _, v := range st.Condition["StringEquals"][key] {
							roles[a+" "+v] = true
						}
					}
				}
			}
			for _, need := range []string{"ssm:SendCommand", "ssm:GetCommandInvocation", "ssm:DescribeInstanceInformation",
				"ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot",
				"ec2:CreateSnapshots", "ec2:CreateTags", "ec2:DeleteSnapshot",
				"ec2:DescribeVolumes", "ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume"} {
				if !granted[need] {
					t.Errorf("the function is not granted %s", need)
				}
			}
			// Both roles can be reached: the verifier by the verify action,
			// the clone target by the clone action.
			for _, role := range []string{rules.verifierVal, rules.cloneTargetVal} {
				for _, a := range []string{"ssm:SendCommand", "ec2:AttachVolume"} {
					if !roles[a+" "+role] {
						t.Errorf("no %s grant on instances tagged %s=%s", a, roleKey, role)
					}
				}
			}
		})
	}
}

// The checks above are only worth something if they notice a condition
// gone or widened: every condition of every statement, dropped or given
// another value, must make the checks complain about that statement.
func TestIAMChecksCatchDroppedConditions(t *testing.T) {
	for _, tc := range iamCases {
		t.Run(tc.name, func(t *testing.T) {
			rules := tc.rules(tc.env)
			mutations := 0
			for _, st := range functionStatements(t, tc.env) {
				if p := rules.problems(st); len(p) > 0 {
					t.Fatalf("unmutated statement fails already: %v", p)
				}
				for op, kv := range st.Condition {
					for key := range kv {
						for _, m := range []struct {
							what string
							vals []string
						}{{"dropped", nil}, {"set to another value", []string{"other"}}} {
							mutated := st.withCondition(op, key, m.vals)
							mutations++
							if len(rules.problems(mutated)) == 0 {
								t.Errorf("%s: with %s %s %s the checks still pass", st.Sid, op, key, m.what)
							}
						}
					}
				}
			}
			if mutations < 40 {
				t.Errorf("only %d mutations tried: the statements lost their conditions?", mutations)
			}
			t.Logf("%d mutations, each caught", mutations)
		})
	}
}

// withCondition returns a copy of s with Condition[op][key] = vals (nil drops it).
func (s statement) withCondition(op, key string, vals []string) statement {
	out := s
	out.Condition = map[string]map[string][]string{}
	for o, kv := range s.Condition {
		out.Condition[o] = map[string][]string{}
		for k, v := range kv {
			out.Condition[o][k] = v
		}
	}
	if vals == nil {
		delete(out.Condition[op], key)
		if len(out.Condition[op]) == 0 {
			delete(out.Condition, op)
		}
	} else {
		out.Condition[op][key] = vals
	}
	return out
}

// calledOperation names the API a call makes: the method itself, or for the
// SDK's paginators (ec2.NewDescribeSnapshotsPaginator(client, in)) the
// operation each page calls.
func calledOperation(fn string) string {
	if op, ok := strings.CutPrefix(fn, "New"); ok {
		if op, ok := strings.CutSuffix(op, "Paginator"); ok {
			return op
		}
	}
	return fn
}

// Every EC2/SSM API the Lambda's code calls must be granted, and every
// mutating permission granted must be used. The API names come from the
// SDK's own operation files.
func TestIAMCoversLambdaCalls(t *testing.T) {
	lambdaDir := filepath.Join("..", "lambda")
	if _, err := os.Stat(lambdaDir); err != nil {
		t.Skip("no lambda/ directory yet")
	}
	ops := map[string]string{} // method name -> "service:Action"
	for service, pkg := range map[string]string{"ec2": "github.com/aws/aws-sdk-go-v2/service/ec2", "ssm": "github.com/aws/aws-sdk-go-v2/service/ssm"} {
		dir := moduleDir(t, pkg)
		files, err := filepath.Glob(filepath.Join(dir, "api_op_*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no SDK operation files for %s in %s", pkg, dir)
		}
		for _, f := range files {
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "api_op_"), ".go")
			if prev, dup := ops[name]; dup {
				ops[name] = prev + "|" + service + ":" + name
			} else {
				ops[name] = service + ":" + name
			}
		}
	}
	called := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(lambdaDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && len(call.Args) >= 2 {
					if name := calledOperation(sel.Sel.Name); ops[name] != "" {
						called[name] = true
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(called) == 0 {
		t.Skip("lambda/ calls no EC2/SSM API yet")
	}
	granted := map[string]bool{}
	for _, st := range functionStatements(t, sampleEnv) {
		for _, a := range st.Actions {
			granted[a] = true
		}
	}
	for name := range called {
		ok := false
		for _, action := range strings.Split(ops[name], "|") {
			if granted[action] {
				ok = true
			}
		}
		if !ok {
			t.Errorf("lambda calls %s but the template does not grant %s", name, ops[name])
		}
	}
	// Least privilege the other way round: every permission granted, read-only
	// ones included, is one the code uses.
	for action := range granted {
		_, name, _ := strings.Cut(action, ":")
		if !called[name] {
			t.Errorf("the template grants %s but lambda/ never calls %s", action, name)
		}
	}
	t.Logf("lambda calls: %v", slices.Sorted(maps.Keys(called)))
}

// moduleDir finds a package's directory in the module cache via go env.
func moduleDir(t *testing.T, pkg string) string {
	t.Helper()
	out, err := goList(pkg)
	if err != nil {
		t.Skipf("cannot locate %s: %v", pkg, err)
	}
	return out
}

// roleKey is the tag that marks verifier instances and clone targets
// (README "Verify restores", "Security model").
const roleKey = "quiesce:role"

// restorePurposes are the quiesce:purpose values of the volumes the
// function creates from snapshots: the verify action's and the clone action's.
var restorePurposes = []string{"verify", "clone"}

// policyRules are the rules every statement of the function's role must
// keep, for one set of parameters.
type policyRules struct {
	stack, tagVal, verifierVal, cloneTargetVal string
	partition, region                          string
	snapshotARN, volumeARN, instanceARN        string
	documentARNs                               map[string]bool
}

func newPolicyRules(env deploy.Env, tagVal, verifierVal, cloneTargetVal string) policyRules {
	arn := func(service, res string) string {
		return "arn:" + env.Partition + ":" + service + ":" + env.Region + ":" + env.AccountID + ":" + res
	}
	return policyRules{stack: env.StackName, tagVal: tagVal, verifierVal: verifierVal, cloneTargetVal: cloneTargetVal,
		partition: env.Partition, region: env.Region,
		snapshotARN: "arn:" + env.Partition + ":ec2:" + env.Region + "::snapshot/*",
		volumeARN:   arn("ec2", "volume/*"), instanceARN: arn("ec2", "instance/*"),
		documentARNs: map[string]bool{arn("ssm", "document/ref:QuiesceDocument"): true,
			arn("ssm", "document/ref:VerifyDocument"): true, arn("ssm", "document/ref:CloneDocument"): true},
	}
}

// condIn: StringEquals key has at least one value, each of them allowed.
func (s statement) condIn(key string, allowed ...string) bool {
	vals, ok := s.Condition["StringEquals"][key]
	if !ok || len(vals) == 0 {
		return false
	}
	for _, v := range vals {
		if !slices.Contains(allowed, v) {
			return false
		}
	}
	return true
}

// problems lists what is wrong with one statement, empty when nothing is.
func (c policyRules) problems(st statement) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, st.Sid+": "+fmt.Sprintf(format, args...)) }
	if st.Effect != "Allow" {
		bad("Effect %q", st.Effect)
	}
	for _, a := range st.Actions {
		if strings.Contains(a, "*") {
			bad("wildcard action %s", a)
		}
		if readOnly.MatchString(a) {
			continue
		}
		for _, r := range st.Resources {
			if r == "*" || strings.HasSuffix(r, ":*") {
				bad("mutating action %s on resource %q", a, r)
			}
			if !strings.HasPrefix(r, "arn:"+c.partition+":") || !strings.Contains(r, ":"+c.region+":") {
				bad("%s on %q is not scoped to this partition and region", a, r)
			}
		}
		switch a {
		case "ssm:SendCommand":
			c.sendCommand(st, bad)
		case "ec2:CreateSnapshot", "ec2:CreateSnapshots":
			c.createSnapshot(st, a, bad)
		case "ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume":
			c.volumeAction(st, a, bad)
		case "ec2:CreateTags":
			if len(st.Resources) == 1 && st.Resources[0] == c.volumeARN {
				c.volumeTags(st, bad)
			} else {
				c.snapshotTags(st, bad)
			}
		case "ec2:DeleteSnapshot":
			for _, r := range st.Resources {
				if r != c.snapshotARN {
					bad("DeleteSnapshot on %s", r)
				}
			}
			if !st.condEquals("aws:ResourceTag/quiesce:stack", c.stack) {
				bad("DeleteSnapshot without aws:ResourceTag/quiesce:stack = %s", c.stack)
			}
		default:
			bad("unexpected mutating action %s", a)
		}
	}
	return out
}

// sendCommand: this stack's documents unconditioned; instances only with
// exactly one tag condition: the opt-in tag, the verifier role or the
// clone-target role (the tag keys are literals, only their values are parameters).
func (c policyRules) sendCommand(st statement, bad func(string, ...any)) {
	for _, r := range st.Resources {
		switch {
		case c.documentARNs[r]:
			if len(st.Condition) != 0 {
				bad("SendCommand on the document %s is conditioned (%v): put instance conditions in their own statement", r, st.Condition)
			}
		case r == c.instanceARN:
			opted := st.condEquals("ssm:resourceTag/"+optInTagKey, c.tagVal)
			role := st.condEquals("ssm:resourceTag/"+roleKey, c.verifierVal) || st.condEquals("ssm:resourceTag/"+roleKey, c.cloneTargetVal)
			if !(opted || role) || len(st.Condition) != 1 || len(st.Condition["StringEquals"]) != 1 {
				bad("SendCommand on instances must carry exactly StringEquals ssm:resourceTag/%s = %s or ssm:resourceTag/%s = %s or %s: %v",
					optInTagKey, c.tagVal, roleKey, c.verifierVal, c.cloneTargetVal, st.Condition)
			}
		default:
			bad("SendCommand on unexpected resource %s (only this stack's documents and tagged instances)", r)
		}
	}
}

// createSnapshot: the source side (volumes, instances) is open; the new
// snapshot must carry the stack tag.
func (c policyRules) createSnapshot(st statement, action string, bad func(string, ...any)) {
	for _, r := range st.Resources {
		switch r {
		case c.volumeARN, c.instanceARN:
		case c.snapshotARN:
			if !st.condEquals("aws:RequestTag/quiesce:stack", c.stack) {
				bad("%s on snapshots without aws:RequestTag/quiesce:stack = %s: %v", action, c.stack, st.Condition)
			}
		default:
			bad("%s on unexpected resource %s", action, r)
		}
	}
}

// snapshotTags: tags on snapshots only at creation with the stack tag, or
// later quiesce:* keys (never quiesce:stack) on this stack's snapshots.
func (c policyRules) snapshotTags(st statement, bad func(string, ...any)) {
	for _, r := range st.Resources {
		if r != c.snapshotARN {
			bad("CreateTags on %s (snapshots, or restore volumes in a statement of their own)", r)
		}
	}
	onCreate := st.condEquals("ec2:CreateAction", "CreateSnapshot", "CreateSnapshots") &&
		st.condEquals("aws:RequestTag/quiesce:stack", c.stack)
	ownSnapshot := st.condEquals("aws:ResourceTag/quiesce:stack", c.stack)
	switch {
	case onCreate:
	case ownSnapshot:
		// Re-tagging must not be able to move a snapshot out of (or into) the stack.
		if keys := st.Condition["ForAllValues:StringNotEquals"]["aws:TagKeys"]; strings.Join(keys, ",") != "quiesce:stack" {
			bad("re-tagging may change quiesce:stack itself: %v", st.Condition)
		}
		if keys := st.Condition["ForAllValues:StringLike"]["aws:TagKeys"]; strings.Join(keys, ",") != "quiesce:*" {
			bad("re-tagging may set keys outside quiesce:*: %v", st.Condition)
		}
	default:
		bad("CreateTags needs ec2:CreateAction in [CreateSnapshot, CreateSnapshots] with the stack tag, or aws:ResourceTag/quiesce:stack = %s: %v", c.stack, st.Condition)
	}
}

// ownVolume: the statement is limited to this stack's verify or clone volumes.
func (c policyRules) ownVolume(st statement) bool {
	return st.condEquals("aws:ResourceTag/quiesce:stack", c.stack) && st.condIn("aws:ResourceTag/quiesce:purpose", restorePurposes...)
}

// volumeAction: CreateVolume only from this stack's snapshots into volumes
// tagged at creation as this stack's verify or clone volumes; AttachVolume
// only of those to verifier or clone-target instances (exactly one role per
// statement); Detach and Delete only this stack's verify and clone volumes.
func (c policyRules) volumeAction(st statement, action string, bad func(string, ...any)) {
	for _, r := range st.Resources {
		ok := false
		switch {
		case action == "ec2:CreateVolume" && r == c.snapshotARN:
			ok = st.condEquals("aws:ResourceTag/quiesce:stack", c.stack)
		case action == "ec2:CreateVolume" && r == c.volumeARN:
			parent := st.Condition["ArnLike"]["ec2:ParentSnapshot"]
			ok = st.condEquals("aws:RequestTag/quiesce:stack", c.stack) && st.condIn("aws:RequestTag/quiesce:purpose", restorePurposes...) &&
				len(parent) == 1 && parent[0] == c.snapshotARN
		case action == "ec2:AttachVolume" && r == c.instanceARN:
			role := st.condEquals("aws:ResourceTag/"+roleKey, c.verifierVal) || st.condEquals("aws:ResourceTag/"+roleKey, c.cloneTargetVal)
			ok = role && len(st.Condition) == 1 && len(st.Condition["StringEquals"]) == 1
		case action == "ec2:DetachVolume" && r == c.instanceARN:
			ok = len(st.Actions) == 1 // the volume side keeps it to this stack's restore volumes
		case r == c.volumeARN && action != "ec2:CreateVolume":
			ok = c.ownVolume(st)
		}
		if !ok {
			bad("%s on %s without the conditions that keep it to this stack's verify/clone volumes and their role's instances: %v", action, r, st.Condition)
		}
	}
}

// volumeTags: tags on volumes only at CreateVolume with the stack and a
// restore purpose, or later progress tags of one purpose on this stack's
// volumes of that purpose (quiesce:verify-* on verify volumes,
// quiesce:clone-* on clone volumes).
func (c policyRules) volumeTags(st statement, bad func(string, ...any)) {
	onCreate := st.condEquals("ec2:CreateAction", "CreateVolume") && st.condEquals("aws:RequestTag/quiesce:stack", c.stack) &&
		st.condIn("aws:RequestTag/quiesce:purpose", restorePurposes...)
	progress := false
	for _, purpose := range restorePurposes {
		if st.condEquals("aws:ResourceTag/quiesce:stack", c.stack) && st.condEquals("aws:ResourceTag/quiesce:purpose", purpose) &&
			strings.Join(st.Condition["ForAllValues:StringLike"]["aws:TagKeys"], ",") == "quiesce:"+purpose+"-*" {
			progress = true
		}
	}
	if !onCreate && !progress {
		bad("CreateTags on volumes needs ec2:CreateAction=CreateVolume with the stack and purpose tags, or this stack's volumes of one purpose and that purpose's progress keys only: %v", st.Condition)
	}
}
