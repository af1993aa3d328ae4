package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ChangeCursor is what ductbot has seen and done for one change. It is kept
// apart from run history: pruning runs never makes ductbot trigger or vote
// on a change again.
type ChangeCursor struct {
	Change       int
	FirstSeen    time.Time // when ductbot first saw the change (UTC)
	MessagesSeen time.Time // the newest change message already looked at for "recheck" (UTC)
	Triggered    int       // the newest patch set a run was decided for by upload or recheck
	Noticed      int       // the newest patch set an "untrusted uploader" notice was posted for
}

// ChangeCursor returns the cursor of change, or a wrapped ErrNotFound when
// ductbot has none for it (it never saw the change). Times come back in UTC.
// It does not look at runs.
func (s *Store) ChangeCursor(ctx context.Context, change int) (ChangeCursor, error) {
	c := ChangeCursor{Change: change}
	var first, seen sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT first_seen, messages_seen, triggered, noticed
		FROM change_cursors WHERE change_number = ?`, change).Scan(&first, &seen, &c.Triggered, &c.Noticed)
	if errors.Is(err, sql.ErrNoRows) {
		return ChangeCursor{}, fmt.Errorf("cursor of change %d: %w", change, ErrNotFound)
	}
	if err != nil {
		return ChangeCursor{}, fmt.Errorf("get cursor of change %d: %w", change, err)
	}
	c.FirstSeen, c.MessagesSeen = timeOf(first), timeOf(seen)
	return c, nil
}

// PutChangeCursor stores c as the cursor of c.Change, inserting it or
// replacing every field of the stored one. It writes what it is given: it
// does not keep the larger of old and new values, so the caller decides
// the cursor's next value. c.Change must be positive.
func (s *Store) PutChangeCursor(ctx context.Context, c ChangeCursor) error {
	if c.Change <= 0 {
		return fmt.Errorf("put cursor of change %d: change number must be positive", c.Change)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO change_cursors
		(change_number, first_seen, messages_seen, triggered, noticed) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (change_number) DO UPDATE SET first_seen = excluded.first_seen,
			messages_seen = excluded.messages_seen, triggered = excluded.triggered, noticed = excluded.noticed`,
		c.Change, timeArg(c.FirstSeen), timeArg(c.MessagesSeen), c.Triggered, c.Noticed)
	if err != nil {
		return fmt.Errorf("put cursor of change %d: %w", c.Change, err)
	}
	return nil
}

// SetChangeDeps records which changes dependent names in its Depends-On
// footers (directly or through them), replacing what was recorded, in one
// transaction. An empty list forgets them.
func (s *Store) SetChangeDeps(ctx context.Context, dependent int, deps []int) error {
	err := s.inTx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM change_deps WHERE dependent = ?`, dependent); err != nil {
			return err
		}
		for _, d := range deps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO change_deps (dependent, dependency) VALUES (?, ?)
				ON CONFLICT (dependent, dependency) DO NOTHING`, dependent, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set dependencies of change %d: %w", dependent, err)
	}
	return nil
}

// Dependents returns the changes that recorded dependency among their
// dependencies, in number order.
func (s *Store) Dependents(ctx context.Context, dependency int) ([]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT dependent FROM change_deps WHERE dependency = ? ORDER BY dependent`, dependency)
	if err != nil {
		return nil, fmt.Errorf("list dependents of change %d: %w", dependency, err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list dependents of change %d: %w", dependency, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dependents of change %d: %w", dependency, err)
	}
	return out, nil
}
