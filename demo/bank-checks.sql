-- The bank's invariants as `hostagent verify --check-sql` statements: each
-- returns one row whose first column is true on a sound restore. The demo's
-- verify action passes this file (QUIESCE_VERIFY_CHECK_SQL); hostagent has
-- already run CHECK TABLE on every table and compared the binlog position
-- and GTID with the snapshot's tags when these run.

-- Every account is there.
SELECT COUNT(*) = (SELECT v FROM bank.bank_meta WHERE k = 'accounts') AS accounts_complete
  FROM bank.accounts;

-- Money only moves: the total is the opening total.
SELECT SUM(balance) = (SELECT v FROM bank.bank_meta WHERE k = 'total') AS total_unchanged
  FROM bank.accounts;

-- The transfers log is gap-free: ids are exactly 1..N.
SELECT COUNT(*) = COALESCE(MAX(id), 0) AND COALESCE(MIN(id), 1) = 1 AS log_gap_free
  FROM bank.transfers;

-- The sequence row agrees with the log.
SELECT last_id = (SELECT COUNT(*) FROM bank.transfers) AS sequence_agrees
  FROM bank.transfer_seq WHERE id = 1;

-- Every balance equals its opening balance plus what the log says moved.
SELECT COUNT(*) = 0 AS balances_match_log
  FROM bank.accounts a
  LEFT JOIN (SELECT account, SUM(delta) AS delta
               FROM (SELECT from_account AS account, -amount AS delta FROM bank.transfers
                     UNION ALL
                     SELECT to_account, amount FROM bank.transfers) moves
              GROUP BY account) m ON m.account = a.id
 WHERE a.balance <> a.opening_balance + COALESCE(m.delta, 0);

-- The binary log and InnoDB agree: each transfer is one binlogged
-- transaction, so the GTID sequence number is the one after the schema load
-- plus the transfers in InnoDB (one GTID domain, the demo's).
SELECT CAST(SUBSTRING_INDEX(@@gtid_binlog_pos, '-', -1) AS UNSIGNED)
       = (SELECT v FROM bank.bank_meta WHERE k = 'gtid_seq') + (SELECT COUNT(*) FROM bank.transfers) AS binlog_matches_innodb;
