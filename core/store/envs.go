package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ductbot/ductbot/core/run"
)

const envColumns = `name, namespace, release, kind, project, change_number, patch_set, revision,
	subject, owner, matrix, url, status, protected, requested_by,
	created_at, updated_at, active_at, expires_at, gone_at`

func scanEnv(sc rowScanner) (*run.Env, error) {
	var (
		e                     run.Env
		kind, status, matrix  string
		created, updated      int64
		active, expires, gone sql.NullInt64
	)
	err := sc.Scan(&e.Name, &e.Namespace, &e.Release, &kind, &e.Project, &e.Change, &e.PatchSet, &e.Revision,
		&e.Subject, &e.Owner, &matrix, &e.URL, &status, &e.Protected, &e.RequestedBy,
		&created, &updated, &active, &expires, &gone)
	if err != nil {
		return nil, err
	}
	if e.Matrix, err = matrixOf(matrix); err != nil {
		return nil, fmt.Errorf("env %s: %w", e.Name, err)
	}
	e.Kind, e.Status = run.EnvKind(kind), run.EnvStatus(status)
	e.CreatedAt = timeOf(sql.NullInt64{Int64: created, Valid: true})
	e.UpdatedAt = timeOf(sql.NullInt64{Int64: updated, Valid: true})
	e.ActiveAt, e.ExpiresAt, e.GoneAt = timeOf(active), timeOf(expires), timeOf(gone)
	return &e, nil
}

// PutEnv inserts e, or replaces the environment of the same Name, every
// field. It sets e.UpdatedAt to now. A zero e.CreatedAt means "keep the
// stored one" (now, for a new environment); e.CreatedAt is set to the value
// stored.
//
// PutEnv is for tests and tools. The pipeline does not use it: a whole
// record saved from a copy read earlier undoes what others wrote since (a
// !keep or !extend from chat while a run goes on). The pipeline uses the
// column writers instead, one per field: CreateOrReviveEnv, SetEnvStatus,
// SetEnvDeployed, SetEnvProtected, SetEnvExpiry and TouchEnv.
func (s *Store) PutEnv(ctx context.Context, e *run.Env) error {
	if e.Name == "" {
		return errors.New("put env: empty name")
	}
	now := utc(s.now())
	rec := *e
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now // a new record's; an existing one keeps its own
	}
	rec.UpdatedAt = now
	args, err := envArgs(&rec)
	if err != nil {
		return fmt.Errorf("put env %s: %w", e.Name, err)
	}
	var stored int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO envs (`+envColumns+`) VALUES (`+envValues+`)
		ON CONFLICT (name) DO UPDATE SET `+envUpsert+`,
			created_at = COALESCE(?, envs.created_at)
		RETURNING created_at`,
		append(args, timeArg(e.CreatedAt))...,
	).Scan(&stored)
	if err != nil {
		return fmt.Errorf("put env %s: %w", e.Name, err)
	}
	e.CreatedAt = timeOf(sql.NullInt64{Int64: stored, Valid: true})
	e.UpdatedAt = now
	return nil
}

// envValues are the placeholders of envColumns.
const envValues = `?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`

// envUpsert sets every column but name and created_at from the row an
// INSERT proposed.
const envUpsert = `namespace = excluded.namespace, release = excluded.release, kind = excluded.kind,
	project = excluded.project, change_number = excluded.change_number,
	patch_set = excluded.patch_set, revision = excluded.revision, subject = excluded.subject,
	owner = excluded.owner, matrix = excluded.matrix, url = excluded.url, status = excluded.status,
	protected = excluded.protected, requested_by = excluded.requested_by,
	updated_at = excluded.updated_at,
	active_at = excluded.active_at, expires_at = excluded.expires_at, gone_at = excluded.gone_at`

// envArgs returns the values of every column, in envColumns order. A zero
// CreatedAt or UpdatedAt is written as the zero time (0), not NULL.
func envArgs(e *run.Env) ([]any, error) {
	matrix, err := matrixArg(e.Matrix)
	if err != nil {
		return nil, err
	}
	return []any{e.Name, e.Namespace, e.Release, string(e.Kind), e.Project, e.Change, e.PatchSet, e.Revision,
		textArg(e.Subject), textArg(e.Owner), matrix, e.URL, string(e.Status), e.Protected, e.RequestedBy,
		timeArg(e.CreatedAt).Int64, timeArg(e.UpdatedAt).Int64, timeArg(e.ActiveAt), timeArg(e.ExpiresAt), timeArg(e.GoneAt)}, nil
}

// GetEnv returns the environment with the given name, or ErrNotFound.
func (s *Store) GetEnv(ctx context.Context, name string) (*run.Env, error) {
	e, err := scanEnv(s.r.QueryRowContext(ctx, `SELECT `+envColumns+` FROM envs WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("env %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get env %s: %w", name, err)
	}
	return e, nil
}

// ListEnvs returns the environments f selects, oldest first.
func (s *Store) ListEnvs(ctx context.Context, f EnvFilter) ([]*run.Env, error) {
	var (
		where []string
		args  []any
	)
	if f.Project != "" {
		where, args = append(where, "project = ?"), append(args, f.Project)
	}
	if f.Change != 0 {
		where, args = append(where, "change_number = ?"), append(args, f.Change)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if f.RequestedBy != "" {
		where, args = append(where, "requested_by = ?"), append(args, f.RequestedBy)
	}
	if f.Alive {
		where, args = append(where, "status <> ?"), append(args, string(run.EnvGone))
	}
	q := `SELECT ` + envColumns + ` FROM envs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at, name`
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list envs: %w", err)
	}
	defer rows.Close()
	var envs []*run.Env
	for rows.Next() {
		e, err := scanEnv(rows)
		if err != nil {
			return nil, fmt.Errorf("list envs: %w", err)
		}
		envs = append(envs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list envs: %w", err)
	}
	return envs, nil
}

// DeleteEnv removes the environment record, or fails with ErrNotFound. Its
// runs are kept.
func (s *Store) DeleteEnv(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM envs WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete env %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete env %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("delete env %s: %w", name, ErrNotFound)
	}
	return nil
}

// The column writers. Each writes only the columns it names, so each field
// of an environment has one writer and a stale copy held by one part of
// ductbot cannot undo another's write. Each fails with a wrapped ErrNotFound
// when no environment has the name. updated_at is written only by
// SetEnvStatus (and by CreateOrReviveEnv and PutEnv for a new record).

// SetEnvProtected sets whether the environment is kept from cleanup
// (!keep). It writes nothing else.
func (s *Store) SetEnvProtected(ctx context.Context, name string, protected bool) error {
	return s.updateEnv(ctx, "set protection of", name, `protected = ?`, protected)
}

// SetEnvExpiry sets when the environment's time is up; the zero time means
// no TTL. It writes nothing else: not the activity time, not protection.
func (s *Store) SetEnvExpiry(ctx context.Context, name string, expires time.Time) error {
	return s.updateEnv(ctx, "set expiry of", name, `expires_at = ?`, timeArg(expires))
}

// TouchEnv sets the environment's last activity time to activeAt, as given
// (it does not keep the later of old and new). It writes nothing else, not
// even updated_at.
func (s *Store) TouchEnv(ctx context.Context, name string, activeAt time.Time) error {
	return s.updateEnv(ctx, "touch", name, `active_at = ?`, timeArg(activeAt))
}

// SetEnvStatus sets the environment's status and its updated_at to at. For
// run.EnvGone it also sets gone_at to at; for any other status it clears
// gone_at. It does not check that the transition is allowed (the pipeline
// owns the lifecycle) and writes nothing else.
func (s *Store) SetEnvStatus(ctx context.Context, name string, status run.EnvStatus, at time.Time) error {
	var gone sql.NullInt64
	if status == run.EnvGone {
		gone = timeArg(at)
	}
	return s.updateEnv(ctx, "set status of", name, `status = ?, updated_at = ?, gone_at = ?`,
		string(status), utc(at).UnixNano(), gone)
}

// SetEnvDeployed records what the environment runs now: the patch set, its
// revision and the matrix deployed. It writes nothing else: not the status,
// protection, expiry or activity time.
func (s *Store) SetEnvDeployed(ctx context.Context, name string, patchSet int, revision string, matrix run.Matrix) error {
	m, err := matrixArg(matrix)
	if err != nil {
		return fmt.Errorf("set deployed of env %s: %w", name, err)
	}
	return s.updateEnv(ctx, "set deployed of", name, `patch_set = ?, revision = ?, matrix = ?`, patchSet, revision, m)
}

// updateEnv runs UPDATE envs SET set WHERE name = name.
func (s *Store) updateEnv(ctx context.Context, what, name, set string, args ...any) error {
	res, err := s.w.ExecContext(ctx, `UPDATE envs SET `+set+` WHERE name = ?`, append(args, name)...)
	if err != nil {
		return fmt.Errorf("%s env %s: %w", what, name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s env %s: %w", what, name, err)
	}
	if n == 0 {
		return fmt.Errorf("%s env %s: %w", what, name, ErrNotFound)
	}
	return nil
}

// CreateOrReviveEnv makes e's environment exist, and reports whether it made
// a fresh record (created) rather than updating a live one.
//
//   - No record named e.Name: e is inserted as a fresh environment.
//   - A gone record: it is replaced whole by e as a fresh environment.
//   - A live record (any status but run.EnvGone): only the identity and
//     request fields are updated: kind, project, change, subject, owner,
//     matrix, URL, requested_by when e.RequestedBy is not empty, active_at
//     when e.ActiveAt is not zero, expires_at when e.ExpiresAt is not zero.
//     Protection, created_at, updated_at, status, the deployed patch set and
//     revision, namespace and release are kept, and so is expires_at when
//     e.ExpiresAt is zero.
//
// A fresh environment is not protected and has no gone_at whatever e says
// (SetEnvProtected and SetEnvStatus own those); its created_at is
// e.CreatedAt (now when zero), its updated_at now, and every other field,
// status included, comes from e. e is not changed.
func (s *Store) CreateOrReviveEnv(ctx context.Context, e *run.Env) (created bool, err error) {
	if e.Name == "" {
		return false, errors.New("create or revive env: empty name")
	}
	now := utc(s.now())
	fresh := *e
	fresh.Protected, fresh.GoneAt, fresh.UpdatedAt = false, time.Time{}, now
	if fresh.CreatedAt.IsZero() {
		fresh.CreatedAt = now
	}
	args, err := envArgs(&fresh)
	if err != nil {
		return false, fmt.Errorf("create or revive env %s: %w", e.Name, err)
	}
	matrix, _ := matrixArg(e.Matrix) // envArgs encoded it already
	err = s.inTx(ctx, func(tx txn) error {
		// Insert, or replace a gone record whole. A live record is left
		// alone here but locked until the transaction ends, also on
		// PostgreSQL, so it cannot go in between.
		res, err := tx.ExecContext(ctx, `INSERT INTO envs (`+envColumns+`) VALUES (`+envValues+`)
			ON CONFLICT (name) DO UPDATE SET `+envUpsert+`, created_at = excluded.created_at
			WHERE envs.status = ?`, append(args, string(run.EnvGone))...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			created = err == nil
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE envs SET kind = ?, project = ?, change_number = ?,
			subject = ?, owner = ?, matrix = ?, url = ?,
			requested_by = CASE WHEN ? = '' THEN requested_by ELSE ? END,
			active_at = COALESCE(?, active_at), expires_at = COALESCE(?, expires_at)
			WHERE name = ?`,
			string(e.Kind), e.Project, e.Change, textArg(e.Subject), textArg(e.Owner), matrix, e.URL,
			e.RequestedBy, e.RequestedBy, timeArg(e.ActiveAt), timeArg(e.ExpiresAt), e.Name)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("create or revive env %s: %w", e.Name, err)
	}
	return created, nil
}
