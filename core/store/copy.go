package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// ErrNotEmpty is returned (wrapped) by Copy when the destination already
// holds state.
var ErrNotEmpty = errors.New("the destination store is not empty")

// Copied counts what Copy copied.
type Copied struct {
	Runs, TestLogs, ReplyTargets, Envs, Meta, ChangeCursors, ChangeDeps int
	// LastRunID is the last id src ever issued to a run (pruned runs
	// included); dst issues only larger ones. 0: none.
	LastRunID int64
}

func (c Copied) String() string {
	return fmt.Sprintf("%d runs (%d test logs, %d reply targets), %d environments, %d change cursors, %d dependencies, %d meta values; run ids continue after %d",
		c.Runs, c.TestLogs, c.ReplyTargets, c.Envs, c.ChangeCursors, c.ChangeDeps, c.Meta, c.LastRunID)
}

// Copy copies all of src's state into dst, which must be empty (else
// ErrNotEmpty): runs with their ids, test logs, reply targets,
// environments, change cursors and meta values such as the Gerrit
// watermark. It reads one consistent snapshot of src and writes dst in one
// transaction, so dst gets all of it or nothing. Ids issued to runs since
// pruned are not issued again by dst. Either store may be SQLite or
// PostgreSQL; writes made to src after the snapshot are not copied, so stop
// the ductbot using src first.
func Copy(ctx context.Context, dst, src *Store) (Copied, error) {
	var c Copied
	snap, err := src.r.pool.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return c, fmt.Errorf("read %s: %w", src, err)
	}
	defer snap.Rollback()
	from := txn{snap, src.d}
	if c.LastRunID, err = src.lastRunID(ctx, from); err != nil {
		return c, fmt.Errorf("read %s: %w", src, err)
	}

	err = dst.inTx(ctx, func(to txn) error {
		if err := dst.checkEmpty(ctx, to); err != nil {
			return err
		}
		var err error
		if c.Runs, err = copyRows(ctx, from, to, "runs", runColumns, "id", func(sc rowScanner) ([]any, error) {
			r, err := scanRun(sc)
			if err != nil {
				return nil, err
			}
			args, err := runArgs(r)
			return append([]any{r.ID}, args...), err
		}); err != nil {
			return err
		}
		if c.TestLogs, err = copyRows(ctx, from, to, "test_logs", "run_id, seq, pod, phase, log", "run_id, seq", scanAny(5)); err != nil {
			return err
		}
		if c.ReplyTargets, err = copyRows(ctx, from, to, "reply_targets", "run_id, target", "run_id", scanAny(2)); err != nil {
			return err
		}
		if c.Envs, err = copyRows(ctx, from, to, "envs", envColumns, "name", func(sc rowScanner) ([]any, error) {
			e, err := scanEnv(sc)
			if err != nil {
				return nil, err
			}
			return envArgs(e)
		}); err != nil {
			return err
		}
		if c.ChangeCursors, err = copyRows(ctx, from, to, "change_cursors",
			"change_number, first_seen, messages_seen, triggered, noticed", "change_number", scanAny(5)); err != nil {
			return err
		}
		if c.ChangeDeps, err = copyRows(ctx, from, to, "change_deps", "dependent, dependency", "dependent, dependency", scanAny(2)); err != nil {
			return err
		}
		if c.Meta, err = copyRows(ctx, from, to, "meta", "key, value", "key", scanAny(2)); err != nil {
			return err
		}
		if c.LastRunID > 0 {
			if err := dst.d.setLastRunID(ctx, to, c.LastRunID); err != nil {
				return fmt.Errorf("continue run ids after %d: %w", c.LastRunID, err)
			}
		}
		return nil
	})
	if err != nil {
		return Copied{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return c, nil
}

// checkEmpty fails with ErrNotEmpty when the store holds any state or ever
// issued a run id.
func (s *Store) checkEmpty(ctx context.Context, tx txn) error {
	for _, table := range []string{"runs", "envs", "meta", "change_cursors", "change_deps"} {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", table, err)
		}
		if n > 0 {
			return fmt.Errorf("%w: it has %d rows in %s", ErrNotEmpty, n, table)
		}
	}
	last, err := s.lastRunID(ctx, tx)
	if err != nil {
		return err
	}
	if last > 0 {
		return fmt.Errorf("%w: it issued run ids up to %d", ErrNotEmpty, last)
	}
	return nil
}

// copyRows copies table's columns from one transaction to the other, in
// the order of orderBy, turning each row into the values to insert with
// conv. It returns how many rows it copied.
func copyRows(ctx context.Context, from, to txn, table, columns, orderBy string, conv func(rowScanner) ([]any, error)) (int, error) {
	rows, err := from.QueryContext(ctx, `SELECT `+columns+` FROM `+table+` ORDER BY `+orderBy)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	marks := strings.TrimSuffix(strings.Repeat("?, ", strings.Count(columns, ",")+1), ", ")
	ins, err := to.PrepareContext(ctx, `INSERT INTO `+table+` (`+columns+`) VALUES (`+marks+`)`)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", table, err)
	}
	defer ins.Close()
	n := 0
	for rows.Next() {
		args, err := conv(rows)
		if err != nil {
			return n, fmt.Errorf("read %s: %w", table, err)
		}
		if _, err := ins.ExecContext(ctx, args...); err != nil {
			return n, fmt.Errorf("write %s row %d: %w", table, n+1, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read %s: %w", table, err)
	}
	return n, nil
}

// scanAny reads a row of n columns of integers, text and NULLs as they
// are: what the tables without flags hold.
func scanAny(n int) func(rowScanner) ([]any, error) {
	return func(sc rowScanner) ([]any, error) {
		vals := make([]any, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		return vals, sc.Scan(ptrs...)
	}
}
