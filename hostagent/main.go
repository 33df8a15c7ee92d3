// Command hostagent locks MySQL/MariaDB and freezes filesystems for an
// application-consistent EBS snapshot, holds them under a hard deadline, and
// thaws them. See DESIGN.md ("hostagent") for the contract.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
