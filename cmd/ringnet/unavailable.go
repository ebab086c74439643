package main

// Commands the issue asks for whose feature ringnetd does not have yet.
// They exist so that an operator (or a script) learns that plainly, with
// exit status 2, instead of "unknown command" or an empty table.

// unavailableError is the answer of a command whose feature is missing.
type unavailableError struct {
	command string
	missing string // the feature ringnetd lacks, and what happens meanwhile
}

func (e *unavailableError) Error() string {
	return e.command + " is not available in this version of ringnet: " + e.missing
}

var unavailable = map[string]*unavailableError{
	"policy": {"policy", "the CLI's view of NetworkPolicy is not built yet (missing feature: what an endpoint may " +
		"reach and why). ringnetd --kubernetes does enforce NetworkPolicy; its drops are counted as policy_denied " +
		"in `ringnet stats`"},
}
