package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryLogEventIsDocumented keeps docs/logging.md a complete catalog: alert rules are written
// against it, so an undocumented event is a broken interface.
func TestEveryLogEventIsDocumented(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "logging.md"))
	if err != nil {
		t.Fatal(err)
	}
	emitted := regexp.MustCompile(`Str\("event", "([a-z_]+)"\)`)
	found := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		path, _ = filepath.Rel(root, path) // as the repository names it
		for _, m := range emitted.FindAllStringSubmatch(string(src), -1) {
			found++
			if !strings.Contains(string(doc), "| `"+m[1]+"` |") {
				t.Errorf("%s emits event %q, which docs/logging.md does not list", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 10 {
		t.Fatalf("found only %d event names in the code; the pattern no longer matches how events are logged", found)
	}
}
