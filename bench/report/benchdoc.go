package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
)

// benchDocs reads what each benchmark of a package measures from its doc
// comment, in the package's _test.go files under root (the repository):
// the comment's first sentence, less the function's name, by benchmark
// name without "Benchmark". A package outside the module, or a file that
// does not parse, gives nothing: the table then has no description.
func benchDocs(root, pkg string) map[string]string {
	rel, ok := strings.CutPrefix(pkg, modulePath+"/")
	if !ok {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(rel), "*_test.go"))
	docs := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			continue
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Doc == nil || !strings.HasPrefix(fn.Name.Name, "Benchmark") {
				continue
			}
			docs[strings.TrimPrefix(fn.Name.Name, "Benchmark")] = firstSentence(fn.Doc.Text(), fn.Name.Name)
		}
	}
	return docs
}

// firstSentence is text's first sentence on one line, without a leading
// name ("BenchmarkX measures ..." becomes "measures ...").
func firstSentence(text, name string) string {
	text = strings.Join(strings.Fields(text), " ")
	text = strings.TrimPrefix(strings.TrimPrefix(text, name+" "), name+": ")
	if i := strings.Index(text, ". "); i >= 0 {
		text = text[:i+1]
	}
	return strings.ReplaceAll(text, "|", `\|`)
}
