package deploy_test

import (
	"go/ast"
	"go/token"
	"sort"
	"strconv"
	"testing"

	"github.com/quiesce/quiesce/ssmdoc"
)

// Every SSM parameter the Lambda sends must be declared by the
// Quiesce document (SSM refuses SendCommand with an undeclared parameter),
// and every literal value it sends must pass the document's validation.
// The parameter maps are found in lambda/ as map[string]string literals with
// an "action" key (and params["action"] = "…" assignments).
func TestLambdaSendsDeclaredParameters(t *testing.T) {
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	sent := map[string][]string{} // name -> literal values seen
	inspectLambdaSource(t, func(n ast.Node) bool {
		// params["action"] = "check" style updates of such a map.
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
			if ix, ok := as.Lhs[0].(*ast.IndexExpr); ok {
				if k, ok := stringLit(ix.Index); ok && k == "action" {
					if v, ok := stringLit(as.Rhs[0]); ok {
						sent["action"] = append(sent["action"], v)
					}
				}
			}
		}
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		mt, ok := lit.Type.(*ast.MapType)
		if !ok || !isIdent(mt.Key, "string") || !isIdent(mt.Value, "string") {
			return true
		}
		keys := map[string]ast.Expr{}
		for _, el := range lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			if k, ok := stringLit(kv.Key); ok {
				keys[k] = kv.Value
			}
		}
		if _, ok := keys["action"]; !ok {
			return true
		}
		for k, v := range keys {
			if s, ok := stringLit(v); ok {
				sent[k] = append(sent[k], s)
			} else if _, seen := sent[k]; !seen {
				sent[k] = nil
			}
		}
		return true
	})
	if len(sent) == 0 {
		t.Fatal("found no SSM parameter map (a map[string]string literal with an \"action\" key) in lambda/")
	}
	names := make([]string, 0, len(sent))
	for name := range sent {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := doc.Parameters[name]; !ok {
			t.Errorf("lambda/ sends parameter %q, which the Quiesce document does not declare", name)
			continue
		}
		for _, v := range sent[name] {
			if err := doc.Validate(name, v); err != nil {
				t.Errorf("lambda/ sends a literal the document refuses: %v", err)
			}
		}
	}
	t.Logf("parameters sent by lambda/: %v (literal actions: %v)", names, sent["action"])
	for _, action := range []string{"freeze", "thaw", "check"} {
		found := false
		for _, v := range sent["action"] {
			found = found || v == action
		}
		if !found {
			t.Errorf("lambda/ never sends action=%s", action)
		}
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
