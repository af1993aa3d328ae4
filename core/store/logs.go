package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ductbot/ductbot/core/run"
)

// cleanLogs returns a copy of logs whose texts are valid UTF-8 without NUL
// bytes (textArg), within budget bytes together (run.BoundLogs).
func cleanLogs(logs []run.TestLog, budget int) []run.TestLog {
	out := make([]run.TestLog, len(logs))
	for i, l := range logs {
		l.Pod, l.Phase, l.Log = textArg(l.Pod), textArg(l.Phase), textArg(l.Log)
		out[i] = l
	}
	return run.BoundLogs(out, budget)
}

// PutTestLogs replaces the test logs of run runID with logs, kept in the
// given order. The RunID fields of logs are ignored. It fails with
// ErrNotFound if there is no such run.
//
// Logs are stored as valid UTF-8 without NUL bytes (each bad byte becomes
// U+FFFD) and, together, within the limit
// SetMaxLogBytes sets (pod names and phases not counted): each pod gets an
// even share of it, and what a pod with a shorter log leaves goes to the
// others. A log longer than its share keeps its head and its tail with a
// line saying how much was cut (text.HeadTail). The caller's logs are not
// changed.
func (s *Store) PutTestLogs(ctx context.Context, runID int64, logs []run.TestLog) error {
	logs = cleanLogs(logs, int(s.maxLogBytes.Load()))
	err := s.inTx(ctx, func(tx txn) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM test_logs WHERE run_id = ?`, runID); err != nil {
			return err
		}
		if len(logs) == 0 {
			return nil
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO test_logs (run_id, seq, pod, phase, log) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, l := range logs {
			if _, err := ins.ExecContext(ctx, runID, i, l.Pod, l.Phase, l.Log); err != nil {
				return fmt.Errorf("pod %s: %w", l.Pod, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put test logs of run %d: %w", runID, err)
	}
	return nil
}

// TestLogs returns the test logs of run runID in the order they were put.
// A run without logs, or one that does not exist, has none.
func (s *Store) TestLogs(ctx context.Context, runID int64) ([]run.TestLog, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT pod, phase, log FROM test_logs WHERE run_id = ? ORDER BY seq`, runID)
	if err != nil {
		return nil, fmt.Errorf("test logs of run %d: %w", runID, err)
	}
	defer rows.Close()
	var logs []run.TestLog
	for rows.Next() {
		l := run.TestLog{RunID: runID}
		if err := rows.Scan(&l.Pod, &l.Phase, &l.Log); err != nil {
			return nil, fmt.Errorf("test logs of run %d: %w", runID, err)
		}
		logs = append(logs, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("test logs of run %d: %w", runID, err)
	}
	return logs, nil
}

// GetMeta returns the value stored under key and whether there was one.
func (s *Store) GetMeta(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get meta %q: %w", key, err)
	}
	return v, true, nil
}

// SetMeta stores value under key, replacing any value there.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}
