package deploy_test

import (
	"fmt"
	"go/ast"
	"path/filepath"
	"regexp"
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

// Every statement, one by one: no mutating action on "*", and each mutating
// action carries the condition that keeps it to this stack / tagged instances.
func TestIAMLeastPrivilege(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         deploy.Env
		tagVal      string
		verifierVal string
	}{
		{"sample parameters", sampleEnv, "nightly", "db-verifier"},
		{"defaults", deploy.Env{StackName: "quiesce", Region: "us-east-1", AccountID: "111122223333", Partition: "aws"}, "true", "verifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stack := tc.env.StackName
			arn := func(service, res string) string {
				return "arn:" + tc.env.Partition + ":" + service + ":" + tc.env.Region + ":" + tc.env.AccountID + ":" + res
			}
			snapshotARN := "arn:" + tc.env.Partition + ":ec2:" + tc.env.Region + "::snapshot/*"
			docARN := arn("ssm", "document/ref:QuiesceDocument")
			verifyDocARN := arn("ssm", "document/ref:VerifyDocument")
			check := verifyChecks{t: t, stack: stack, verifierVal: tc.verifierVal, snapshotARN: snapshotARN,
				volumeARN: arn("ec2", "volume/*"), instanceARN: arn("ec2", "instance/*")}
			granted := map[string]bool{}
			for _, st := range functionStatements(t, tc.env) {
				id := st.Sid
				if st.Effect != "Allow" {
					t.Errorf("%s: Effect %q", id, st.Effect)
				}
				for _, a := range st.Actions {
					if strings.Contains(a, "*") {
						t.Errorf("%s: wildcard action %s", id, a)
					}
					granted[a] = true
					if readOnly.MatchString(a) {
						continue
					}
					for _, r := range st.Resources {
						if r == "*" || strings.HasSuffix(r, ":*") {
							t.Errorf("%s: mutating action %s on resource %q", id, a, r)
						}
						if !strings.HasPrefix(r, "arn:"+tc.env.Partition+":") || !strings.Contains(r, ":"+tc.env.Region+":") {
							t.Errorf("%s: %s on %q is not scoped to this partition and region", id, a, r)
						}
					}
					switch a {
					case "ssm:SendCommand":
						for _, r := range st.Resources {
							switch {
							case r == docARN || r == verifyDocARN:
								// The documents themselves: unconditioned, they are this stack's.
							case r == arn("ec2", "instance/*"):
								// The tag keys are literals; only their values are parameters.
								opted := st.condEquals("ssm:resourceTag/"+optInTagKey, tc.tagVal)
								verifiers := st.condEquals("ssm:resourceTag/"+verifierRoleKey, tc.verifierVal)
								if !(opted || verifiers) || len(st.Condition) != 1 || len(st.Condition["StringEquals"]) != 1 {
									t.Errorf("%s: SendCommand on instances must carry exactly StringEquals ssm:resourceTag/%s = %s or ssm:resourceTag/%s = %s: %v",
										id, optInTagKey, tc.tagVal, verifierRoleKey, tc.verifierVal, st.Condition)
								}
							default:
								t.Errorf("%s: SendCommand on unexpected resource %s (only %s and tagged instances)", id, r, docARN)
							}
						}
					case "ec2:CreateSnapshot", "ec2:CreateSnapshots":
						for _, r := range st.Resources {
							switch r {
							case arn("ec2", "volume/*"), arn("ec2", "instance/*"):
								// Source side of the call; the new snapshot is constrained below.
							case snapshotARN:
								if !st.condEquals("aws:RequestTag/quiesce:stack", stack) {
									t.Errorf("%s: %s on snapshots without aws:RequestTag/quiesce:stack = %s: %v", id, a, stack, st.Condition)
								}
							default:
								t.Errorf("%s: %s on unexpected resource %s", id, a, r)
							}
						}
					case "ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume":
						check.volumeAction(st, a)
					case "ec2:CreateTags":
						if len(st.Resources) == 1 && st.Resources[0] == check.volumeARN {
							check.volumeTags(st)
							continue
						}
						for _, r := range st.Resources {
							if r != snapshotARN {
								t.Errorf("%s: CreateTags on %s (snapshots, or verify volumes in a statement of their own)", id, r)
							}
						}
						onCreate := st.condEquals("ec2:CreateAction", "CreateSnapshot", "CreateSnapshots") &&
							st.condEquals("aws:RequestTag/quiesce:stack", stack)
						ownSnapshot := st.condEquals("aws:ResourceTag/quiesce:stack", stack)
						if !onCreate && !ownSnapshot {
							t.Errorf("%s: CreateTags needs ec2:CreateAction in [CreateSnapshot, CreateSnapshots] with the stack tag, or aws:ResourceTag/quiesce:stack = %s: %v", id, stack, st.Condition)
						}
						if ownSnapshot && !onCreate {
							// Re-tagging must not be able to move a snapshot out of (or into) the stack.
							if keys := st.Condition["ForAllValues:StringNotEquals"]["aws:TagKeys"]; strings.Join(keys, ",") != "quiesce:stack" {
								t.Errorf("%s: re-tagging may change quiesce:stack itself: %v", id, st.Condition)
							}
						}
					case "ec2:DeleteSnapshot":
						for _, r := range st.Resources {
							if r != snapshotARN {
								t.Errorf("%s: DeleteSnapshot on %s", id, r)
							}
						}
						if !st.condEquals("aws:ResourceTag/quiesce:stack", stack) {
							t.Errorf("%s: DeleteSnapshot without aws:ResourceTag/quiesce:stack = %s", id, stack)
						}
					default:
						t.Errorf("%s: unexpected mutating action %s", id, a)
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
		})
	}
}

// Every EC2/SSM API the Lambda's code calls must be granted, and every
// mutating permission granted must be used. The API names come from the
// SDK's own operation files.
func TestIAMCoversLambdaCalls(t *testing.T) {
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
	inspectLambdaSource(t, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if _, ok := ops[sel.Sel.Name]; ok && len(call.Args) >= 2 {
					called[sel.Sel.Name] = true
				}
				// ec2.NewDescribeSnapshotsPaginator(client, in) calls DescribeSnapshots.
				if op, ok := strings.CutPrefix(sel.Sel.Name, "New"); ok && strings.HasSuffix(op, "Paginator") && len(call.Args) >= 2 {
					if op = strings.TrimSuffix(op, "Paginator"); ops[op] != "" {
						called[op] = true
					}
				}
			}
		}
		return true
	})
	if len(called) == 0 {
		t.Fatal("found no EC2/SSM API call in lambda/")
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
	t.Logf("lambda calls: %v", keys(called))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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

// verifierRoleKey is the tag that marks verifier instances (README "Verify restores").
const verifierRoleKey = "quiesce:role"

// verifyChecks are the rules for the restore verification's grants.
type verifyChecks struct {
	t                                   *testing.T
	stack, verifierVal                  string
	snapshotARN, volumeARN, instanceARN string
}

// ownVolume: the statement is limited to this stack's verify volumes.
func (c verifyChecks) ownVolume(st statement) bool {
	return st.condEquals("aws:ResourceTag/quiesce:stack", c.stack) && st.condEquals("aws:ResourceTag/quiesce:purpose", "verify")
}

// volumeAction: CreateVolume only from this stack's snapshots into volumes
// tagged at creation; AttachVolume only of this stack's verify volumes to
// verifier-tagged instances; Detach and Delete only this stack's verify volumes.
func (c verifyChecks) volumeAction(st statement, action string) {
	t := c.t
	t.Helper()
	for _, r := range st.Resources {
		ok := false
		switch {
		case action == "ec2:CreateVolume" && r == c.snapshotARN:
			ok = st.condEquals("aws:ResourceTag/quiesce:stack", c.stack)
		case action == "ec2:CreateVolume" && r == c.volumeARN:
			parent := st.Condition["ArnLike"]["ec2:ParentSnapshot"]
			ok = st.condEquals("aws:RequestTag/quiesce:stack", c.stack) && st.condEquals("aws:RequestTag/quiesce:purpose", "verify") &&
				len(parent) == 1 && parent[0] == c.snapshotARN
		case action == "ec2:AttachVolume" && r == c.instanceARN:
			ok = st.condEquals("aws:ResourceTag/"+verifierRoleKey, c.verifierVal) && len(st.Condition) == 1 && len(st.Condition["StringEquals"]) == 1
		case action == "ec2:DetachVolume" && r == c.instanceARN:
			ok = true // the volume side below keeps it to this stack's verify volumes
		case r == c.volumeARN && action != "ec2:CreateVolume":
			ok = c.ownVolume(st)
		}
		if !ok {
			t.Errorf("%s: %s on %s without the conditions that keep it to this stack's verify volumes and verifiers: %v", st.Sid, action, r, st.Condition)
		}
	}
}

// volumeTags: tags on volumes only at CreateVolume with the stack and purpose
// tags, or later quiesce:verify-* progress tags on this stack's verify volumes.
func (c verifyChecks) volumeTags(st statement) {
	t := c.t
	t.Helper()
	onCreate := st.condEquals("ec2:CreateAction", "CreateVolume") && st.condEquals("aws:RequestTag/quiesce:stack", c.stack) &&
		st.condEquals("aws:RequestTag/quiesce:purpose", "verify")
	progress := c.ownVolume(st) && strings.Join(st.Condition["ForAllValues:StringLike"]["aws:TagKeys"], ",") == "quiesce:verify-*"
	if !onCreate && !progress {
		t.Errorf("%s: CreateTags on volumes needs ec2:CreateAction=CreateVolume with the stack and purpose tags, or this stack's verify volumes and quiesce:verify-* keys only: %v", st.Sid, st.Condition)
	}
}
