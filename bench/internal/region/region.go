// Package region rewrites the generated parts of a hand-written markdown
// document. A generated part sits between two HTML comments, each alone on
// its line, which markdown renders as nothing:
//
//	<!-- generated: crossnode -->
//	... written by a program, replaced whole on the next run ...
//	<!-- end -->
//
// Everything outside the markers is the author's and Replace keeps it to
// the byte. Regions do not nest, and each name appears once.
package region

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
)

// End is the line that closes a region.
const End = "<!-- end -->"

// Begin is the line that opens region name.
func Begin(name string) string { return "<!-- generated: " + name + " -->" }

var (
	beginRE = regexp.MustCompile(`^<!-- generated: ([A-Za-z0-9_.-]+) -->$`)
	// markerRE is any line that looks like a marker, well formed or not.
	markerRE = regexp.MustCompile(`^\s*<!--\s*(generated\b|end\s*-->)`)
)

// span is where one region's body lies in a document: doc[start:end] is
// everything between the begin line's newline and the end line.
type span struct {
	name       string
	start, end int
}

// parse finds the regions of doc, or says which marker is out of place.
func parse(doc []byte) ([]span, error) {
	var spans []span
	var open *span
	for off, lineNo := 0, 1; off < len(doc); lineNo++ {
		n := bytes.IndexByte(doc[off:], '\n')
		next := off + n + 1
		if n < 0 {
			n, next = len(doc)-off, len(doc)
		}
		line := bytes.TrimRight(doc[off:off+n], " \t\r")
		switch m := beginRE.FindSubmatch(line); {
		case m != nil:
			if open != nil {
				return nil, fmt.Errorf("line %d: region %q begins inside region %q", lineNo, m[1], open.name)
			}
			name := string(m[1])
			if slices.ContainsFunc(spans, func(s span) bool { return s.name == name }) {
				return nil, fmt.Errorf("line %d: region %q appears twice", lineNo, name)
			}
			open = &span{name: name, start: next}
		case string(line) == End:
			if open == nil {
				return nil, fmt.Errorf("line %d: %s without a region", lineNo, End)
			}
			open.end = off
			spans = append(spans, *open)
			open = nil
		case markerRE.Match(line):
			return nil, fmt.Errorf("line %d: malformed marker %q (want %q or %q, alone on the line)", lineNo, line, Begin("NAME"), End)
		}
		off = next
	}
	if open != nil {
		return nil, fmt.Errorf("region %q has no %s", open.name, End)
	}
	return spans, nil
}

// Names lists the regions of doc in order.
func Names(doc []byte) ([]string, error) {
	spans, err := parse(doc)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.name
	}
	return names, nil
}

// Replace returns doc with the body of region name replaced by body (a
// newline is added if body lacks one). found is false if doc has no such
// region: the result is then doc with the region appended at its end, and
// the caller may want to say so.
func Replace(doc []byte, name string, body []byte) (out []byte, found bool, err error) {
	if !beginRE.MatchString(Begin(name)) {
		return nil, false, fmt.Errorf("region name %q: want letters, digits, '.', '_' or '-'", name)
	}
	spans, err := parse(doc)
	if err != nil {
		return nil, false, err
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(slices.Clip(body), '\n')
	}
	i := slices.IndexFunc(spans, func(s span) bool { return s.name == name })
	if i < 0 {
		out = slices.Clone(doc)
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, '\n')
		out = append(out, Begin(name)+"\n"...)
		out = append(out, body...)
		return append(out, End+"\n"...), false, nil
	}
	s := spans[i]
	out = make([]byte, 0, len(doc)-(s.end-s.start)+len(body))
	out = append(out, doc[:s.start]...)
	out = append(out, body...)
	return append(out, doc[s.end:]...), true, nil
}

// Body returns the body of region name, and whether doc has it.
func Body(doc []byte, name string) ([]byte, bool, error) {
	spans, err := parse(doc)
	if err != nil {
		return nil, false, err
	}
	i := slices.IndexFunc(spans, func(s span) bool { return s.name == name })
	if i < 0 {
		return nil, false, nil
	}
	return doc[spans[i].start:spans[i].end], true, nil
}
