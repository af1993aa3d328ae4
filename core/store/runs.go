package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

const runColumns = `id, env, project, change_number, patch_set, revision, subject, owner,
	matrix, trigger_kind, requested_by, test_only, state, result, attempts, detail, reported,
	created_at, started_at, deployed_at, tested_at, finished_at, diagnosis, deps`

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

func scanRun(sc rowScanner) (*run.Run, error) {
	var (
		r                                   run.Run
		matrix                              string
		created                             int64
		started, deployed, tested, finished sql.NullInt64
		trigger, state, result              string
		diagnosis, deps                     string
	)
	err := sc.Scan(&r.ID, &r.Env, &r.Project, &r.Change, &r.PatchSet, &r.Revision, &r.Subject, &r.Owner,
		&matrix, &trigger, &r.RequestedBy, &r.TestOnly, &state, &result, &r.Attempts, &r.Detail, &r.Reported,
		&created, &started, &deployed, &tested, &finished, &diagnosis, &deps)
	if err != nil {
		return nil, err
	}
	if r.Diagnosis, err = diagnosisOf(diagnosis); err != nil {
		return nil, fmt.Errorf("run %d: %w", r.ID, err)
	}
	if r.Matrix, err = matrixOf(matrix); err != nil {
		return nil, fmt.Errorf("run %d: %w", r.ID, err)
	}
	if deps != "" {
		if err := json.Unmarshal([]byte(deps), &r.Deps); err != nil {
			return nil, fmt.Errorf("run %d: decode deps: %w", r.ID, err)
		}
	}
	r.Trigger, r.State, r.Result = run.Trigger(trigger), run.State(state), run.Result(result)
	r.CreatedAt = timeOf(sql.NullInt64{Int64: created, Valid: true})
	r.StartedAt, r.DeployedAt, r.TestedAt, r.FinishedAt = timeOf(started), timeOf(deployed), timeOf(tested), timeOf(finished)
	return &r, nil
}

// runArgs returns the values of every column but id, in runColumns order.
func runArgs(r *run.Run) ([]any, error) {
	matrix, err := matrixArg(r.Matrix)
	if err != nil {
		return nil, err
	}
	diagnosis, err := diagnosisArg(r.Diagnosis)
	if err != nil {
		return nil, err
	}
	deps := ""
	if len(r.Deps) > 0 {
		b, err := json.Marshal(r.Deps)
		if err != nil {
			return nil, fmt.Errorf("encode deps: %w", err)
		}
		deps = string(b)
	}
	return []any{r.Env, r.Project, r.Change, r.PatchSet, r.Revision, textArg(r.Subject), textArg(r.Owner),
		matrix, string(r.Trigger), r.RequestedBy, r.TestOnly, string(r.State), string(r.Result), r.Attempts, textArg(r.Detail), r.Reported,
		timeArg(r.CreatedAt), timeArg(r.StartedAt), timeArg(r.DeployedAt), timeArg(r.TestedAt), timeArg(r.FinishedAt), diagnosis, deps}, nil
}

// diagnosisArg encodes a run's diagnosis for its column (” for none).
// Its logs and events are untrusted text: made valid UTF-8 without NULs.
func diagnosisArg(d *run.Diagnosis) (string, error) {
	if d == nil {
		return "", nil
	}
	c := *d
	for _, f := range []*string{&c.Class, &c.Component, &c.Pod, &c.Container, &c.Image, &c.Reason, &c.Logs} {
		*f = textArg(*f)
	}
	c.Events, c.Others = textArgs(c.Events), textArgs(c.Others)
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode diagnosis: %w", err)
	}
	return string(b), nil
}

func textArgs(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = textArg(s)
	}
	return out
}

// diagnosisOf decodes a stored diagnosis; ” is none.
func diagnosisOf(s string) (*run.Diagnosis, error) {
	if s == "" {
		return nil, nil
	}
	var d run.Diagnosis
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("decode diagnosis: %w", err)
	}
	return &d, nil
}

// CreateRun inserts r and sets r.ID to the new, never reused, id. It sets
// r.CreatedAt to now if it is zero. r.ID must be zero.
func (s *Store) CreateRun(ctx context.Context, r *run.Run) error {
	if r.ID != 0 {
		return fmt.Errorf("create run: run already has id %d", r.ID)
	}
	created := r.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	rec := *r
	rec.CreatedAt = utc(created)
	args, err := runArgs(&rec)
	if err != nil {
		return fmt.Errorf("create run for %s: %w", r.Env, err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO runs (`+strings.TrimPrefix(runColumns, "id, ")+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, args...).Scan(&id)
	if err != nil {
		return fmt.Errorf("create run for %s: %w", r.Env, err)
	}
	r.ID, r.CreatedAt = id, rec.CreatedAt
	return nil
}

// UpdateRun replaces the stored run r.ID with r, every field (a zero
// CreatedAt keeps the stored one). It fails with ErrNotFound if there is no
// such run (it may have been pruned).
func (s *Store) UpdateRun(ctx context.Context, r *run.Run) error {
	args, err := runArgs(r)
	if err != nil {
		return fmt.Errorf("update run %d: %w", r.ID, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE runs SET env = ?, project = ?, change_number = ?, patch_set = ?,
		revision = ?, subject = ?, owner = ?, matrix = ?, trigger_kind = ?, requested_by = ?, test_only = ?,
		state = ?, result = ?, attempts = ?, detail = ?, reported = ?,
		created_at = COALESCE(?, created_at), started_at = ?, deployed_at = ?, tested_at = ?, finished_at = ?,
		diagnosis = ?, deps = ?
		WHERE id = ?`, append(args, r.ID)...)
	if err != nil {
		return fmt.Errorf("update run %d: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update run %d: %w", r.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update run %d: %w", r.ID, ErrNotFound)
	}
	return nil
}

// GetRun returns the run with the given id, or ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id int64) (*run.Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get run %d: %w", id, err)
	}
	return r, nil
}

// ListRuns returns the runs f selects, newest first.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]*run.Run, error) {
	var (
		where []string
		args  []any
	)
	if f.Env != "" {
		where, args = append(where, "env = ?"), append(args, f.Env)
	}
	if f.Project != "" {
		where, args = append(where, "project = ?"), append(args, f.Project)
	}
	if f.Change != 0 {
		where, args = append(where, "change_number = ?"), append(args, f.Change)
	}
	if f.PatchSet != 0 {
		where, args = append(where, "patch_set = ?"), append(args, f.PatchSet)
	}
	if f.Unfinished {
		where = append(where, "state <> 'done'")
	}
	if f.Search != "" {
		w, a := searchRuns(f.Search)
		where, args = append(where, w), append(args, a...)
	}
	q := `SELECT ` + runColumns + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC`
	switch {
	case f.Limit > 0:
		q, args = q+` LIMIT ?`, append(args, f.Limit)
	case f.Offset > 0: // SQLite has no OFFSET without a LIMIT
		q, args = q+` LIMIT ?`, append(args, int64(math.MaxInt64))
	}
	if f.Offset > 0 {
		q, args = q+` OFFSET ?`, append(args, f.Offset)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var runs []*run.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// searchRuns is the condition of RunFilter.Search and its arguments.
// LOWER folds ASCII the same on both databases (PostgreSQL folds more).
func searchRuns(term string) (string, []any) {
	pattern := "%" + likeEscaper.Replace(strings.ToLower(textArg(term))) + "%"
	cond := `LOWER(subject) LIKE ? ESCAPE '\' OR LOWER(owner) LIKE ? ESCAPE '\'`
	args := []any{pattern, pattern}
	if n, err := strconv.ParseInt(strings.TrimSpace(term), 10, 32); err == nil && n > 0 { // INTEGER on both
		cond, args = cond+` OR change_number = ?`, append(args, n)
	}
	return `(` + cond + `)`, args
}

// likeEscaper makes a string match itself in LIKE ... ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// RunExisted reports whether id was ever issued to a run, including runs
// since pruned. Ids are never reused.
func (s *Store) RunExisted(ctx context.Context, id int64) (bool, error) {
	if id <= 0 {
		return false, nil
	}
	last, err := s.lastRunID(ctx, s.r.txn)
	if err != nil {
		return false, fmt.Errorf("run %d existed: %w", id, err)
	}
	return id <= last, nil
}

// lastRunID is the last id ever issued to a run, 0 if none was.
func (s *Store) lastRunID(ctx context.Context, q txn) (int64, error) {
	var last sql.NullInt64
	err := q.QueryRowContext(ctx, s.d.lastRunID).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil // no run was ever created
	}
	return last.Int64, err
}

// PruneRuns deletes the finished runs, with their test logs, that finished
// before before, and returns how many it deleted. Unfinished runs are kept
// whatever their age.
func (s *Store) PruneRuns(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM runs
		WHERE state = 'done' AND finished_at IS NOT NULL AND finished_at < ?`, before.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune runs finished before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune runs: %w", err)
	}
	return int(n), nil
}
