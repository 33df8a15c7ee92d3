// Package ssmdoc holds the SSM Command documents quiesce runs on instances
// (as standalone YAML files embedded here; template.yaml carries the same
// content) and a loader/validator/renderer that does what the SSM Agent does
// with a schema 2.2 aws:runShellScript document before running it:
//
//   - every supplied parameter must be declared; missing ones take their
//     default (a parameter without a default is required);
//   - each value is checked against allowedValues, allowedPattern (Go regexp,
//     MatchString, as the agent's own validator does: the patterns therefore
//     anchor themselves with ^…$) and minChars/maxChars;
//   - a parameter with interpolationType ENV_VAR is exported to the script as
//     the environment variable SSM_<name> (SSM Agent >= 3.3.2746.0);
//   - {{ name }} references in runCommand are replaced textually by the value,
//     as every agent version does. The quiesce documents contain no such
//     reference, so no value ever becomes part of the script text; Render still
//     performs the substitution so a document that used one would be rendered
//     (and tested) exactly as the agent would run it.
//
// Render's output is what the local AWS stand-in (test/cmd/awslocal) executes with
// bash, so the demo runs the real document, not a copy.
package ssmdoc

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

//go:embed quiesce-command.yaml
var quiesceYAML []byte

//go:embed install-hostagent.yaml
var installYAML []byte

//go:embed quiesce-verify.yaml
var verifyYAML []byte

// QuiesceDocument returns the YAML of the "Quiesce" Command document
// (freeze, thaw, check, status through hostagent).
func QuiesceDocument() []byte { return append([]byte(nil), quiesceYAML...) }

// InstallDocument returns the YAML of the Command document that installs a
// hostagent release from S3 with SHA-256 verification.
func InstallDocument() []byte { return append([]byte(nil), installYAML...) }

// VerifyDocument returns the YAML of the "QuiesceVerify" Command document
// (hostagent verify on a verifier instance).
func VerifyDocument() []byte { return append([]byte(nil), verifyYAML...) }

// ErrInvalidParameter is wrapped by every Render error caused by a parameter
// (undeclared, missing, or a value the document does not allow), so a caller
// such as the SSM stand-in can answer like SSM's InvalidParameters error.
var ErrInvalidParameter = errors.New("invalid parameter")

// Document is a parsed schema 2.2 Command document.
type Document struct {
	SchemaVersion string                `yaml:"schemaVersion"`
	Description   string                `yaml:"description"`
	Parameters    map[string]*Parameter `yaml:"parameters"`
	MainSteps     []Step                `yaml:"mainSteps"`
}

// Parameter is one declared document parameter. Only type String is used
// (and accepted) by quiesce's documents.
type Parameter struct {
	Type              string   `yaml:"type"`
	Description       string   `yaml:"description"`
	Default           *string  `yaml:"default"`
	AllowedValues     []string `yaml:"allowedValues"`
	AllowedPattern    string   `yaml:"allowedPattern"`
	MinChars          *int     `yaml:"minChars"`
	MaxChars          *int     `yaml:"maxChars"`
	InterpolationType string   `yaml:"interpolationType"`

	pattern *regexp.Regexp
}

// Step is one mainSteps entry.
type Step struct {
	Action       string         `yaml:"action"`
	Name         string         `yaml:"name"`
	Precondition map[string]any `yaml:"precondition"`
	Inputs       StepInputs     `yaml:"inputs"`
}

// StepInputs are the inputs of an aws:runShellScript step.
type StepInputs struct {
	RunCommand       []string `yaml:"runCommand"`
	TimeoutSeconds   any      `yaml:"timeoutSeconds"`
	WorkingDirectory string   `yaml:"workingDirectory"`
}

// InterpolationEnvVar is the interpolationType that exports a parameter as SSM_<name>.
const InterpolationEnvVar = "ENV_VAR"

// EnvPrefix is the prefix of the environment variable names the agent sets.
const EnvPrefix = "SSM_"

// paramRef matches {{ name }} the way the agent's parameter replacement does
// (optional blanks inside the braces). Parameter Store references
// ({{ssm:...}}, {{ssm-secure:...}}) have a ':' and are matched separately.
var (
	paramRef = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}`)
	storeRef = regexp.MustCompile(`\{\{\s*ssm(-secure)?:`)
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9_]{1,128}$`)
)

// Load parses and checks a document: schema 2.2, a single aws:runShellScript
// step, String parameters whose allowedPattern compiles (Go RE2 syntax, the
// same engine the agent uses) and whose defaults satisfy their own
// constraints, and no reference to an undeclared parameter.
func Load(doc []byte) (*Document, error) {
	var d Document
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("ssmdoc: parse: %w", err)
	}
	if d.SchemaVersion != "2.2" {
		return nil, fmt.Errorf("ssmdoc: schemaVersion %q: only 2.2 is supported", d.SchemaVersion)
	}
	if len(d.MainSteps) != 1 || d.MainSteps[0].Action != "aws:runShellScript" {
		return nil, fmt.Errorf("ssmdoc: need exactly one aws:runShellScript step, got %d step(s)", len(d.MainSteps))
	}
	if len(d.MainSteps[0].Inputs.RunCommand) == 0 {
		return nil, fmt.Errorf("ssmdoc: step %q has no runCommand", d.MainSteps[0].Name)
	}
	for name, p := range d.Parameters {
		if p == nil {
			return nil, fmt.Errorf("ssmdoc: parameter %s: empty declaration", name)
		}
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("ssmdoc: parameter name %q: must be letters, digits or '_' (it becomes %s<name>)", name, EnvPrefix)
		}
		if p.Type != "String" {
			return nil, fmt.Errorf("ssmdoc: parameter %s: type %q: only String is supported", name, p.Type)
		}
		if p.InterpolationType != "" && p.InterpolationType != InterpolationEnvVar {
			return nil, fmt.Errorf("ssmdoc: parameter %s: interpolationType %q: only %s is supported", name, p.InterpolationType, InterpolationEnvVar)
		}
		if p.AllowedPattern != "" {
			re, err := regexp.Compile(p.AllowedPattern)
			if err != nil {
				return nil, fmt.Errorf("ssmdoc: parameter %s: allowedPattern: %w", name, err)
			}
			p.pattern = re
		}
		if p.Default != nil {
			if err := p.check(name, *p.Default); err != nil {
				return nil, fmt.Errorf("ssmdoc: default of %w", err)
			}
		}
	}
	for _, line := range d.MainSteps[0].Inputs.RunCommand {
		if storeRef.MatchString(line) {
			return nil, fmt.Errorf("ssmdoc: Parameter Store references ({{ssm:...}}) are not supported")
		}
		for _, m := range paramRef.FindAllStringSubmatch(line, -1) {
			if _, ok := d.Parameters[m[1]]; !ok {
				return nil, fmt.Errorf("ssmdoc: runCommand references undeclared parameter %q", m[1])
			}
		}
	}
	return &d, nil
}

// ParameterNames returns the declared parameter names, sorted.
func (d *Document) ParameterNames() []string {
	names := make([]string, 0, len(d.Parameters))
	for n := range d.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// References returns the parameter names referenced as {{ name }} in the
// script, in order of first appearance.
func (d *Document) References() []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range d.MainSteps[0].Inputs.RunCommand {
		for _, m := range paramRef.FindAllStringSubmatch(line, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	return out
}

// Validate checks one value against the parameter's declaration; the error
// names the parameter and the value and wraps ErrInvalidParameter.
func (d *Document) Validate(name, value string) error {
	p, ok := d.Parameters[name]
	if !ok {
		return fmt.Errorf("ssmdoc: parameter %q is not declared by the document: %w", name, ErrInvalidParameter)
	}
	if err := p.check(name, value); err != nil {
		return fmt.Errorf("ssmdoc: %w", err)
	}
	return nil
}

func (p *Parameter) check(name, value string) error {
	if len(p.AllowedValues) > 0 {
		found := false
		for _, v := range p.AllowedValues {
			if v == value {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("parameter %s: value %q is not one of %s: %w", name, value, strings.Join(p.AllowedValues, ", "), ErrInvalidParameter)
		}
	}
	if p.pattern != nil && !p.pattern.MatchString(value) {
		return fmt.Errorf("parameter %s: value %q does not match the allowed pattern /%s/: %w", name, value, p.AllowedPattern, ErrInvalidParameter)
	}
	n := utf8.RuneCountInString(value)
	if p.MinChars != nil && n < *p.MinChars {
		return fmt.Errorf("parameter %s: value %q is shorter than %d characters: %w", name, value, *p.MinChars, ErrInvalidParameter)
	}
	if p.MaxChars != nil && n > *p.MaxChars {
		return fmt.Errorf("parameter %s: value %q is longer than %d characters: %w", name, value, *p.MaxChars, ErrInvalidParameter)
	}
	return nil
}

// Render validates params against the document (undeclared names, missing
// required values and disallowed values are errors naming the parameter and
// value), fills defaults, and returns the shell script the agent would write
// (the runCommand lines joined with newlines, {{ name }} references replaced)
// and the SSM_<name>=value environment entries for ENV_VAR parameters, sorted
// by name. Run it like the agent does, e.g.
// exec.Command("bash", "-c", script) with Env = append(os.Environ(), env...).
func (d *Document) Render(params map[string]string) (script string, env []string, err error) {
	for name := range params {
		if _, ok := d.Parameters[name]; !ok {
			return "", nil, fmt.Errorf("ssmdoc: parameter %q is not declared by the document: %w", name, ErrInvalidParameter)
		}
	}
	values := make(map[string]string, len(d.Parameters))
	for _, name := range d.ParameterNames() {
		p := d.Parameters[name]
		v, ok := params[name]
		if !ok {
			if p.Default == nil {
				return "", nil, fmt.Errorf("ssmdoc: parameter %s is required: %w", name, ErrInvalidParameter)
			}
			v = *p.Default
		}
		if err := p.check(name, v); err != nil {
			return "", nil, fmt.Errorf("ssmdoc: %w", err)
		}
		values[name] = v
		if p.InterpolationType == InterpolationEnvVar {
			env = append(env, EnvPrefix+name+"="+v)
		}
	}
	lines := make([]string, len(d.MainSteps[0].Inputs.RunCommand))
	for i, line := range d.MainSteps[0].Inputs.RunCommand {
		lines[i] = paramRef.ReplaceAllStringFunc(line, func(ref string) string {
			return values[paramRef.FindStringSubmatch(ref)[1]]
		})
	}
	return strings.Join(lines, "\n"), env, nil
}

// Quiesce loads the embedded Quiesce document.
func Quiesce() (*Document, error) { return Load(quiesceYAML) }

// Install loads the embedded install-hostagent document.
func Install() (*Document, error) { return Load(installYAML) }

// Verify loads the embedded verify document.
func Verify() (*Document, error) { return Load(verifyYAML) }
