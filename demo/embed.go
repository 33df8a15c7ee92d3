// Package demo holds the demo's data files: the bank schema and the seed
// recipe's shell baseline, embedded so bin/demo is self-contained.
package demo

import _ "embed"

// BankSQL creates the `bank` database (accounts, transfer_seq, transfers, bank_meta).
//
//go:embed bank.sql
var BankSQL string

// SeedBaselineScript is demo/seed-baseline.sh: the seed's FTWRL + xfs_freeze recipe.
//
//go:embed seed-baseline.sh
var SeedBaselineScript string

// BankChecksSQL is demo/bank-checks.sql: the bank's invariants as `hostagent
// verify --check-sql` statements (each returns one true row on a sound copy).
//
//go:embed bank-checks.sql
var BankChecksSQL string
