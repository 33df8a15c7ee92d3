-- The demo's bank: money only moves between accounts, so the total never
-- changes, and every transfer is logged with a gap-free id. A restored
-- snapshot is sound when the total is intact, the log has no gaps, and every
-- account's balance equals its opening balance plus what the log says moved.
-- All tables are InnoDB (transactional, crash-safe).
CREATE DATABASE IF NOT EXISTS bank;
USE bank;

CREATE TABLE accounts (
  id              INT    NOT NULL PRIMARY KEY,
  opening_balance BIGINT NOT NULL,
  balance         BIGINT NOT NULL,
  CONSTRAINT balance_not_negative CHECK (balance >= 0)
) ENGINE=InnoDB;

-- One row handing out transfer ids: taking the next id locks this row until
-- the transfer commits, and a rolled-back transfer gives its id back, so the
-- ids in `transfers` are exactly 1..N (unlike AUTO_INCREMENT, which leaves gaps).
CREATE TABLE transfer_seq (
  id      TINYINT NOT NULL PRIMARY KEY,
  last_id BIGINT  NOT NULL
) ENGINE=InnoDB;

-- Append-only transfers log.
CREATE TABLE transfers (
  id           BIGINT      NOT NULL PRIMARY KEY,
  from_account INT         NOT NULL,
  to_account   INT         NOT NULL,
  amount       BIGINT      NOT NULL,
  writer       INT         NOT NULL,
  created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY from_account (from_account),
  KEY to_account (to_account),
  CONSTRAINT amount_positive CHECK (amount > 0)
) ENGINE=InnoDB;

-- What the invariants are checked against.
CREATE TABLE bank_meta (
  k VARCHAR(32) NOT NULL PRIMARY KEY,
  v BIGINT      NOT NULL
) ENGINE=InnoDB;

INSERT INTO transfer_seq VALUES (1, 0);

INSERT INTO accounts (id, opening_balance, balance)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
  SELECT i, 1000000, 1000000 FROM n;

INSERT INTO bank_meta VALUES ('accounts', 1000), ('total', 1000 * 1000000);

-- The GTID sequence number of this very transaction (the last of the load):
-- every later transaction is one transfer, so a sound copy's GTID sequence
-- number is this plus the transfers it holds (demo/bank-checks.sql).
INSERT INTO bank_meta SELECT 'gtid_seq', CAST(SUBSTRING_INDEX(@@gtid_binlog_pos, '-', -1) AS UNSIGNED) + 1;
