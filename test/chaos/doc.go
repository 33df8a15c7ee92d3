// Package chaos attacks hostagent's fail-safe with randomized faults: the
// real binary, real loop XFS and ext4 filesystems and a real mariadbd, one
// injected fault (or two) per case, and after every case the guarantees of
// README.md ("What it guarantees", exit codes) checked from outside.
//
// Everything lives in the tests (chaos_test.go drives; see there for the
// CHAOS_SEED / CHAOS_CASES / CHAOS_ONLY / CHAOS_CATEGORIES variables). `make
// chaos` runs a long series, the default `go test` a short one.
package chaos
