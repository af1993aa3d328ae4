package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

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

// PutEnv inserts e, or replaces the environment of the same Name. It sets
// e.UpdatedAt to now. A zero e.CreatedAt means "keep the stored one" (now,
// for a new environment); e.CreatedAt is set to the value stored.
func (s *Store) PutEnv(ctx context.Context, e *run.Env) error {
	if e.Name == "" {
		return errors.New("put env: empty name")
	}
	matrix, err := matrixArg(e.Matrix)
	if err != nil {
		return fmt.Errorf("put env %s: %w", e.Name, err)
	}
	now := utc(s.now())
	created := timeArg(e.CreatedAt)
	var stored int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO envs (`+envColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, ?), ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			namespace = excluded.namespace, release = excluded.release, kind = excluded.kind,
			project = excluded.project, change_number = excluded.change_number,
			patch_set = excluded.patch_set, revision = excluded.revision, subject = excluded.subject,
			owner = excluded.owner, matrix = excluded.matrix, url = excluded.url, status = excluded.status,
			protected = excluded.protected, requested_by = excluded.requested_by,
			created_at = COALESCE(?, envs.created_at), updated_at = excluded.updated_at,
			active_at = excluded.active_at, expires_at = excluded.expires_at, gone_at = excluded.gone_at
		RETURNING created_at`,
		e.Name, e.Namespace, e.Release, string(e.Kind), e.Project, e.Change, e.PatchSet, e.Revision,
		e.Subject, e.Owner, matrix, e.URL, string(e.Status), e.Protected, e.RequestedBy,
		created, now.UnixNano(), now.UnixNano(), timeArg(e.ActiveAt), timeArg(e.ExpiresAt), timeArg(e.GoneAt),
		created,
	).Scan(&stored)
	if err != nil {
		return fmt.Errorf("put env %s: %w", e.Name, err)
	}
	e.CreatedAt = timeOf(sql.NullInt64{Int64: stored, Valid: true})
	e.UpdatedAt = now
	return nil
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
