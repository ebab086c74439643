package program

import (
	"fmt"
	"os"
	"strings"
)

// Section is a report's section for docs/benchmarks.md, written between
// NewSection and Save.
type Section struct {
	strings.Builder
}

// NewSection starts a section: its title, the command that measured it
// and when, and the machine, ending in the middle of a sentence for the
// caller to say how long it measured.
func NewSection(title string, m Meta) *Section {
	s := &Section{}
	fmt.Fprintf(s, "## %s\n\nMeasured %s with:\n\n```\n%s\n```\n\n", title, m.Date, m.Command)
	fmt.Fprintf(s, "Machine: %s, %d cores, kernel `%s`, %s. %d round(s) per variant, interleaved; ",
		m.CPUModel, m.Cores, m.Kernel, m.GoVersion, m.Runs)
	return s
}

// Save ends the section with the variants, the method and a note if
// rounds failed, and writes it to path.
func (s *Section) Save(path string, vs []Variant, method []string, failed bool) error {
	s.WriteString("\nVariants:\n\n")
	for _, v := range vs {
		fmt.Fprintf(s, "- **(%s) %s**: %s\n", v.ID, v.Name, v.Desc)
	}
	s.WriteString("\nMethod:\n\n")
	for _, m := range method {
		fmt.Fprintf(s, "- %s\n", m)
	}
	if failed {
		s.WriteString("\nSome rounds failed; see the JSON report.\n")
	}
	return os.WriteFile(path, []byte(s.String()), 0o644)
}
