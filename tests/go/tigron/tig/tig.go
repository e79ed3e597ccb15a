// Package tig stands in for nerdctl's test-only "tigron" module when nerdctl
// is built from the Go module proxy (scripts/go-tools.sh).
//
// nerdctl's go.mod replaces that module with a directory of its own
// repository, which the module proxy's zip leaves out, and a non-test file of
// its test helpers compiled into the nerdctl binary names tig.T. The binary
// never runs that code: this package only declares the type so that nerdctl
// builds. It is not a test framework.
package tig

// T is the part of a test handle that nerdctl's compiled-in helpers call.
type T interface {
	Log(args ...any)
	FailNow()
}
