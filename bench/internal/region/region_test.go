package region

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const doc = `# Benchmarks

Hand-written intro.

## One

<!-- generated: one -->
old one
<!-- end -->

### Reading these figures

Prose about one.

## Two

<!-- generated: two -->
<!-- end -->
Tail.`

func TestReplace(t *testing.T) {
	got, found, err := Replace([]byte(doc), "one", []byte("new one\nsecond line"))
	if err != nil || !found {
		t.Fatalf("Replace: found %v, %v", found, err)
	}
	want := strings.Replace(doc, "old one\n", "new one\nsecond line\n", 1)
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}

	got, found, err = Replace(got, "two", []byte("two's body\n"))
	if err != nil || !found {
		t.Fatalf("Replace two: found %v, %v", found, err)
	}
	want = strings.Replace(want, "<!-- generated: two -->\n", "<!-- generated: two -->\ntwo's body\n", 1)
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if b, ok, err := Body(got, "two"); err != nil || !ok || string(b) != "two's body\n" {
		t.Errorf("Body(two) = %q, %v, %v", b, ok, err)
	}
	if names, err := Names(got); err != nil || !cmp.Equal(names, []string{"one", "two"}) {
		t.Errorf("Names = %q, %v", names, err)
	}

	// Replacing with the same body changes nothing.
	again, _, err := Replace(got, "one", []byte("new one\nsecond line\n"))
	if err != nil || string(again) != string(got) {
		t.Errorf("idempotence: %v\n%s", err, again)
	}
}

func TestReplaceAppends(t *testing.T) {
	got, found, err := Replace([]byte(doc), "three", []byte("three"))
	if err != nil || found {
		t.Fatalf("Replace: found %v, %v", found, err)
	}
	want := doc + "\n\n<!-- generated: three -->\nthree\n<!-- end -->\n"
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct{ doc, err string }{
		{"<!-- generated: a -->\n<!-- generated: b -->\n<!-- end -->\n<!-- end -->\n", `line 2: region "b" begins inside region "a"`},
		{"<!-- generated: a -->\nx\n", `region "a" has no <!-- end -->`},
		{"x\n<!-- end -->\n", "line 2: <!-- end --> without a region"},
		{"<!-- generated: a -->\n<!-- end -->\n<!-- generated: a -->\n<!-- end -->\n", `line 3: region "a" appears twice`},
		{"<!--generated: a-->\n", "line 1: malformed marker"},
		{"<!-- generated: a b -->\n<!-- end -->\n", "line 1: malformed marker"},
	} {
		_, _, err := Replace([]byte(tc.doc), "a", nil)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Replace(%q): %v, want %q", tc.doc, err, tc.err)
		}
	}
	if _, _, err := Replace([]byte(doc), "bad name", nil); err == nil {
		t.Error("Replace with a bad name: no error")
	}
}
