package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// PutReplyTarget stores where in chat the result of run runID goes, as an
// opaque string the chat side encodes (the store never looks inside),
// replacing any target stored for that run. The target goes when the run is
// deleted (pruned). It fails with a wrapped ErrNotFound when there is no such
// run, and rejects an empty target: to forget one, use DeleteReplyTarget.
func (s *Store) PutReplyTarget(ctx context.Context, runID int64, target string) error {
	if target == "" {
		return fmt.Errorf("put reply target of run %d: empty target (DeleteReplyTarget forgets one)", runID)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO reply_targets (run_id, target) VALUES (?, ?)
		ON CONFLICT (run_id) DO UPDATE SET target = excluded.target`, runID, target)
	if s.d.isForeignKey(err) {
		return fmt.Errorf("put reply target of run %d: run %d: %w", runID, runID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put reply target of run %d: %w", runID, err)
	}
	return nil
}

// ReplyTarget returns the target PutReplyTarget stored for run runID, or a
// wrapped ErrNotFound when there is none (never asked from chat, deleted, or
// the run was pruned).
func (s *Store) ReplyTarget(ctx context.Context, runID int64) (string, error) {
	var target string
	err := s.r.QueryRowContext(ctx, `SELECT target FROM reply_targets WHERE run_id = ?`, runID).Scan(&target)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("reply target of run %d: %w", runID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get reply target of run %d: %w", runID, err)
	}
	return target, nil
}

// DeleteReplyTarget deletes the reply target of run runID. Deleting one that
// is absent is not an error. It does not touch the run.
func (s *Store) DeleteReplyTarget(ctx context.Context, runID int64) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM reply_targets WHERE run_id = ?`, runID); err != nil {
		return fmt.Errorf("delete reply target of run %d: %w", runID, err)
	}
	return nil
}
