package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// inspectLambdaSource parses every Go file of the shipped Lambda (lambda/,
// tests excluded) and walks each syntax tree with visit, as ast.Inspect does.
// It fails the test when a file cannot be read or parsed, or when it finds
// none.
func inspectLambdaSource(t *testing.T, visit func(ast.Node) bool) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(filepath.Join("..", "lambda"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, visit)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no Go source under lambda/")
	}
}
