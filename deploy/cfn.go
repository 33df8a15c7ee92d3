// Package deploy checks template.yaml (the SAM template operators deploy) the
// way CloudFormation would read it: its tests parse the template with
// goformation (typed) and with the small evaluator in this file, which turns
// the raw YAML, short-form intrinsic tags included, into plain values for a
// given set of parameter values. goformation drops the properties of
// ScheduleV2 events, so those are checked through Evaluate.
package deploy

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a CloudFormation template decoded to plain Go values (maps,
// slices, strings, ints, bools); intrinsic functions are kept in their long
// form ({"Ref": x}, {"Fn::Sub": x}, ...).
type Template map[string]any

// ReadTemplate reads and decodes a YAML template file.
func ReadTemplate(path string) (Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTemplate(b)
}

// ParseTemplate decodes YAML, translating short-form tags (!Ref, !Sub, ...).
func ParseTemplate(b []byte) (Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(root.Content) != 1 {
		return nil, fmt.Errorf("parse template: expected one YAML document")
	}
	v, err := decodeNode(root.Content[0])
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parse template: top level is not a mapping")
	}
	return Template(m), nil
}

var shortTags = map[string]string{
	"!Ref": "Ref", "!Sub": "Fn::Sub", "!GetAtt": "Fn::GetAtt", "!If": "Fn::If", "!Join": "Fn::Join",
	"!Split": "Fn::Split", "!Equals": "Fn::Equals", "!Not": "Fn::Not", "!And": "Fn::And", "!Or": "Fn::Or",
	"!Select": "Fn::Select", "!FindInMap": "Fn::FindInMap", "!Base64": "Fn::Base64", "!GetAZs": "Fn::GetAZs",
	"!ImportValue": "Fn::ImportValue", "!Condition": "Condition", "!Cidr": "Fn::Cidr",
	"!ToJsonString": "Fn::ToJsonString", "!Length": "Fn::Length",
}

func decodeNode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.AliasNode:
		return decodeNode(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: non-scalar mapping key", n.Content[i].Line)
			}
			val, err := decodeNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := decodeNode(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		plain := *n
		if _, ok := shortTags[n.Tag]; ok {
			plain.Tag = "!!str"
		}
		if err := plain.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node kind %d", n.Line, n.Kind)
	}
	name, ok := shortTags[n.Tag]
	if !ok {
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
		}
		return v, nil
	}
	if name == "Fn::GetAtt" {
		if s, ok := v.(string); ok {
			resource, attr, _ := strings.Cut(s, ".")
			v = []any{resource, attr}
		}
	}
	return map[string]any{name: v}, nil
}

// Resource returns Resources[name] as a map (nil if absent).
func (t Template) Resource(name string) map[string]any {
	res, _ := t["Resources"].(map[string]any)
	r, _ := res[name].(map[string]any)
	return r
}

// Env describes the deployment an evaluation pretends to be.
type Env struct {
	Params    map[string]string // overrides; others take their Default
	StackName string
	Region    string
	AccountID string
	Partition string
}

// Evaluator resolves intrinsic functions against a template and an Env.
// References to resources resolve to "ref:<Name>" and "getatt:<Name>.<Attr>"
// placeholders, which is enough to see what is wired to what.
type Evaluator struct {
	t          Template
	env        Env
	params     map[string]string
	conditions map[string]bool
}

// NewEvaluator resolves parameter values (checking overrides exist) and the
// Conditions section.
func NewEvaluator(t Template, env Env) (*Evaluator, error) {
	e := &Evaluator{t: t, env: env, params: map[string]string{}, conditions: map[string]bool{}}
	params, _ := t["Parameters"].(map[string]any)
	for name := range env.Params {
		if _, ok := params[name]; !ok {
			return nil, fmt.Errorf("parameter %s is not declared", name)
		}
	}
	for name, raw := range params {
		p, _ := raw.(map[string]any)
		if v, ok := env.Params[name]; ok {
			e.params[name] = v
		} else if d, ok := p["Default"]; ok {
			e.params[name] = fmt.Sprint(d)
		} else {
			return nil, fmt.Errorf("parameter %s has no default and no value", name)
		}
	}
	conds, _ := t["Conditions"].(map[string]any)
	// Conditions may refer to each other; resolve in name order, lazily.
	names := make([]string, 0, len(conds))
	for n := range conds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := e.condition(n, 0); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Param returns the resolved value of a parameter.
func (e *Evaluator) Param(name string) string { return e.params[name] }

// Condition returns a resolved condition.
func (e *Evaluator) Condition(name string) bool { return e.conditions[name] }

func (e *Evaluator) condition(name string, depth int) (bool, error) {
	if v, ok := e.conditions[name]; ok {
		return v, nil
	}
	if depth > 20 {
		return false, fmt.Errorf("condition %s: cycle", name)
	}
	conds, _ := e.t["Conditions"].(map[string]any)
	raw, ok := conds[name]
	if !ok {
		return false, fmt.Errorf("condition %s is not declared", name)
	}
	v, err := e.eval(raw, depth+1)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s: not a boolean: %v", name, v)
	}
	e.conditions[name] = b
	return b, nil
}

// Eval resolves every intrinsic function in v.
func (e *Evaluator) Eval(v any) (any, error) { return e.eval(v, 0) }

var subVar = regexp.MustCompile(`\$\{([^}]*)\}`)

func (e *Evaluator) ref(name string) (string, error) {
	switch name {
	case "AWS::StackName":
		return e.env.StackName, nil
	case "AWS::Region":
		return e.env.Region, nil
	case "AWS::AccountId":
		return e.env.AccountID, nil
	case "AWS::Partition":
		return e.env.Partition, nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	}
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	if e.t.Resource(name) != nil {
		return "ref:" + name, nil
	}
	return "", fmt.Errorf("Ref to unknown name %q", name)
}

func (e *Evaluator) sub(s string, vars map[string]any, depth int) (string, error) {
	var firstErr error
	out := subVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := vars[name]; ok {
			r, err := e.eval(v, depth+1)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			return fmt.Sprint(r)
		}
		if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			if e.t.Resource(res) == nil && firstErr == nil {
				firstErr = fmt.Errorf("Fn::Sub: ${%s}: no such resource", name)
			}
			return "getatt:" + res + "." + attr
		}
		r, err := e.ref(name)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("Fn::Sub: %w", err)
		}
		return r
	})
	return out, firstErr
}

func (e *Evaluator) eval(v any, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("evaluation too deep")
	}
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, item := range x {
			r, err := e.eval(item, depth+1)
			if err != nil {
				return nil, err
			}
			if r == noValue {
				continue
			}
			out = append(out, r)
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if r, ok, err := e.intrinsic(k, arg, depth); ok || err != nil {
					return r, err
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, item := range x {
			r, err := e.eval(item, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if r == noValue {
				continue
			}
			out[k] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

type noValueType struct{}

var noValue = noValueType{}

func (e *Evaluator) intrinsic(name string, arg any, depth int) (any, bool, error) {
	switch name {
	case "Ref":
		s, _ := arg.(string)
		if s == "AWS::NoValue" {
			return noValue, true, nil
		}
		r, err := e.ref(s)
		return r, true, err
	case "Fn::GetAtt":
		parts, _ := arg.([]any)
		if len(parts) != 2 {
			return nil, true, fmt.Errorf("Fn::GetAtt: want [resource, attribute], got %v", arg)
		}
		res := fmt.Sprint(parts[0])
		if e.t.Resource(res) == nil {
			return nil, true, fmt.Errorf("Fn::GetAtt: no resource %s", res)
		}
		return "getatt:" + res + "." + fmt.Sprint(parts[1]), true, nil
	case "Fn::Sub":
		r, err := e.fnSub(arg, depth)
		return r, true, err
	case "Fn::If":
		r, err := e.fnIf(arg, depth)
		return r, true, err
	case "Condition":
		r, err := e.condition(fmt.Sprint(arg), depth+1)
		return r, true, err
	}
	if fn, ok := listFunctions[name]; ok {
		a, err := e.evalArgs(name, arg, fn.args, fn.want, depth)
		if err != nil {
			return nil, true, err
		}
		r, err := fn.apply(a)
		return r, true, err
	}
	if strings.HasPrefix(name, "Fn::") {
		return nil, true, fmt.Errorf("intrinsic %s is not supported by this evaluator", name)
	}
	return nil, false, nil
}

// listFunctions are the intrinsics whose list argument is evaluated whole
// before they apply.
var listFunctions = map[string]struct {
	args  int
	want  string
	apply func(a []any) (any, error)
}{
	"Fn::Join": {2, "[delimiter, list]", func(a []any) (any, error) {
		items, _ := a[1].([]any)
		strs := make([]string, len(items))
		for i, it := range items {
			strs[i] = fmt.Sprint(it)
		}
		return strings.Join(strs, fmt.Sprint(a[0])), nil
	}},
	"Fn::Split": {2, "[delimiter, string]", func(a []any) (any, error) {
		parts := strings.Split(fmt.Sprint(a[1]), fmt.Sprint(a[0]))
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	}},
	"Fn::Equals": {2, "two values", func(a []any) (any, error) {
		return fmt.Sprint(a[0]) == fmt.Sprint(a[1]), nil
	}},
	"Fn::Not": {1, "one condition", func(a []any) (any, error) {
		b, ok := a[0].(bool)
		if !ok {
			return nil, fmt.Errorf("Fn::Not: not a boolean")
		}
		return !b, nil
	}},
}

// evalArgs checks that arg is a list of n items and evaluates each.
func (e *Evaluator) evalArgs(fn string, arg any, n int, want string, depth int) ([]any, error) {
	a, _ := arg.([]any)
	if len(a) != n {
		return nil, fmt.Errorf("%s: want %s", fn, want)
	}
	out := make([]any, n)
	for i, item := range a {
		r, err := e.eval(item, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// fnSub is Fn::Sub with a string or a [string, variables] argument.
func (e *Evaluator) fnSub(arg any, depth int) (any, error) {
	switch a := arg.(type) {
	case string:
		return e.sub(a, nil, depth)
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub: want [string, map]")
		}
		s, _ := a[0].(string)
		vars, _ := a[1].(map[string]any)
		return e.sub(s, vars, depth)
	}
	return nil, fmt.Errorf("Fn::Sub: bad argument %v", arg)
}

// fnIf evaluates only the branch the condition picks (the other may refer
// to what does not exist under this condition).
func (e *Evaluator) fnIf(arg any, depth int) (any, error) {
	a, _ := arg.([]any)
	if len(a) != 3 {
		return nil, fmt.Errorf("Fn::If: want [condition, then, else]")
	}
	c, err := e.condition(fmt.Sprint(a[0]), depth+1)
	if err != nil {
		return nil, err
	}
	if c {
		return e.eval(a[1], depth+1)
	}
	return e.eval(a[2], depth+1)
}
