// Package mysqllock takes and releases the MySQL/MariaDB lock that makes a
// filesystem snapshot application-consistent, on one pinned connection
// (gh-ost style: sql.DB limited to one connection, db.Conn, session
// lock_wait_timeout), and reads the binary log position under it.
//
// # What the lock is for
//
// The filesystem freeze that follows makes InnoDB's files crash-consistent
// at freeze time; InnoDB recovery on the restored copy rolls back whatever
// was uncommitted. The lock adds two things the freeze cannot: (1) the binary
// log position and GTID set reported must describe exactly the transactions
// present in the frozen data, so no commit may happen between reading the
// position and the freeze; (2) non-transactional tables (MyISAM, non-crash-safe
// Aria, CSV) must not be mid-write. Only a lock that blocks commits AND
// non-transactional writes until the thaw gives both.
//
// # What `auto` picks, and why
//
//   - MariaDB >= 10.4: backup-stage (BACKUP STAGE START; BACKUP STAGE
//     BLOCK_COMMIT). BLOCK_COMMIT runs the skipped FLUSH and BLOCK_DDL
//     stages itself: tables not in use are flushed and closed, DDL is blocked,
//     writes to non-transactional tables are blocked (verified on 10.11: a
//     MyISAM INSERT waits), in-flight commits finish, then the binary log and
//     every commit are blocked. The position read afterwards is exact. This is
//     MariaDB's documented recipe for storage snapshots
//     (https://mariadb.com/kb/en/storage-snapshots-and-backup-stage-commands/,
//     also what mariadb-backup runs), and unlike FTWRL it
//     does not wait behind long-running transactional writes (they simply
//     stall at commit; measured on 10.11: acquired in 2–8 ms with a 20 s
//     UPDATE running, where FTWRL times out after the whole lock-wait and
//     blocks every writer meanwhile), so the write-blocked
//     window does not grow with the longest running UPDATE. Caveat: a MyISAM
//     table that is open and was written is not closed, so the restored copy
//     may report it "not closed properly" and auto-check it; MyISAM index
//     blocks held back by DELAY_KEY_WRITE stay in server memory until the
//     table is closed, which only FTWRL does: with delay_key_write=ALL `auto`
//     therefore picks ftwrl, and operators with individual DELAY_KEY_WRITE=1
//     tables should ask for --mysql-lock ftwrl.
//   - MySQL (any version) and MariaDB < 10.4: ftwrl. FLUSH TABLES WITH READ
//     LOCK blocks all writes and commits and closes all tables, so position
//     and data agree. MySQL 8's LOCK INSTANCE FOR BACKUP is NOT chosen
//     automatically: it blocks DDL but not commits, so transactions keep
//     committing between the moment the position is read and the freeze, and
//     the tagged position would be older than the data (and non-InnoDB
//     writes are not blocked at all). `instance` stays available explicitly
//     for operators who use GTID auto-positioning and care more about the
//     window than the tag: its position (from performance_schema.log_status)
//     is the state at lock time, a lower bound.
//   - replica (STOP SLAVE … SQL_THREAD on every channel of a read-only
//     replica, no global lock) is never picked by `auto`: it is as
//     consistent as a global lock only when no local client writes (read_only
//     lets SUPER / READ_ONLY ADMIN users through) and every table is
//     transactional, which the server cannot prove. See replica.go.
//
// Whatever the mode, on a replica the coordinates of every replication
// channel (source binary log file/position executed, relay log, GTID state,
// thread state, errors) are read under the lock into LockInfo.Replication.
//
// # Bounds
//
// Every wait is bounded: the dial (2 s), the lock by the session
// lock_wait_timeout (whole seconds, rounded up) plus a watchdog that kills
// the pending statement at --lock-wait (sub-second values) or one second past
// it, because a pending FTWRL blocks every writer while it waits. Before
// locking, statements older than --long-query-limit make Acquire refuse (or
// with --kill-long-queries, KILL QUERY them). The idle holder connection is
// protected from the server's wait_timeout by a session value longer than the
// longest hold. If innodb_flush_log_at_trx_commit != 1, InnoDB's redo buffer is
// flushed under the lock (FLUSH ENGINE LOGS) so that committed transactions
// in the binary log are in the frozen redo log too.
//
// # Credentials
//
// --mysql-defaults-file ([client] and [quiesce] groups: socket, host, port,
// user, password), --mysql-socket, --mysql-user; otherwise root over the
// local socket (unix_socket authentication as OS root). The password is only
// ever read from the file, never on argv, and every type that carries it
// formats and logs itself redacted.
package mysqllock
