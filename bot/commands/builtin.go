package commands

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
)

// maxListed bounds the environments !envs lists before pointing at the dashboard.
const maxListed = 10

// maxRunsShown bounds the runs !status lists.
const maxRunsShown = 5

// targetArg parses the single <env|change> argument of several commands.
func targetArg(what string) func([]string) (any, error) {
	return func(args []string) (any, error) {
		if len(args) != 1 {
			return nil, usageErr("expected exactly one %s", what)
		}
		if !validTarget(args[0]) {
			return nil, usageErr("%q is not an environment name or change number", clip(args[0]))
		}
		return args[0], nil
	}
}

// validTarget accepts env names (DNS-1123 labels) and change numbers.
func validTarget(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

func noArgs(args []string) (any, error) {
	if len(args) != 0 {
		return nil, usageErr("this command takes no arguments")
	}
	return nil, nil
}

func builtins(b Backend, opts Options) []*Command {
	components := b.Components()
	p := opts.Prefix
	envs := &Command{
		Name: "envs", Summary: "Lists live environments.",
		Parse: noArgs,
		Run: func(ctx context.Context, call *Call, _ any) (chat.Message, error) {
			list, err := b.Envs(ctx)
			if err != nil {
				return chat.Message{}, fmt.Errorf("listing environments: %w", err)
			}
			return formatEnvs(list, opts.Now(), b.DashboardURL()), nil
		},
	}
	return []*Command{
		{
			Name:    "env",
			Usage:   "<change>[/<patchset>] [component=ref ...] [ttl=<duration>]",
			Summary: "Builds or updates an environment for a change with the given component versions, then tests it.",
			Examples: []string{
				"12345",
				"12345/2 " + exampleOverride(components) + " ttl=2d",
			},
			Mutates: true,
			Parse:   func(args []string) (any, error) { return ParseEnv(args, components) },
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				req := args.(pipeline.EnvRequest)
				if opts.MaxTTL > 0 && req.TTL > opts.MaxTTL {
					return chat.Message{}, usageErr("ttl=%s is longer than the maximum, %s", human(req.TTL), human(opts.MaxTTL))
				}
				if opts.MaxEnvsPerUser > 0 {
					live, err := b.Envs(ctx)
					if err != nil {
						return chat.Message{}, fmt.Errorf("counting environments of %s: %w", call.By, err)
					}
					var mine []string
					for _, e := range live {
						if e.RequestedBy == call.By {
							mine = append(mine, e.Name)
						}
					}
					if len(mine) >= opts.MaxEnvsPerUser {
						return chat.Errorf("You already have %d live environments (the limit is %d): %s. Free one with %sdestroy <env>.",
							len(mine), opts.MaxEnvsPerUser, strings.Join(mine, ", "), p), nil
					}
				}
				req.By = call.By
				req.Vouched = call.Router.opts.Permissions.Vouches(call.From)
				req.ReplyTo = call.ReplyTo.Encode()
				t, err := b.RequestEnv(ctx, req)
				if err != nil {
					return chat.Message{}, fmt.Errorf("requesting an environment for change %d: %w", req.Change, err)
				}
				verb := "Building"
				if t.Reused {
					verb = "Updating"
				}
				m := chat.Message{Title: fmt.Sprintf("%s environment %s for change %s (run #%d, %s).",
					verb, t.Env, changeText(req.Change, req.PatchSet), t.RunID, queueText(t.Position))}
				if t.URL != "" {
					m.Fields = append(m.Fields, chat.Field{Name: "url", Value: t.URL})
				}
				m.Fields = append(m.Fields, chat.Field{Name: "log", Value: b.RunURL(t.RunID)})
				m.Lines = append(m.Lines, "I will tell you here when it is tested.")
				return m, nil
			},
		},
		envs,
		{
			Name: "status", Usage: "<change|env>", Summary: "Shows an environment and its latest runs.",
			Examples: []string{"12345"},
			Parse:    targetArg("change number or environment name"),
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				env, runs, err := b.Status(ctx, args.(string))
				if err != nil {
					return chat.Message{}, fmt.Errorf("status of %s: %w", args, err)
				}
				return formatStatus(env, runs, b, opts.Now()), nil
			},
		},
		{
			Name: "destroy", Usage: "<env|change>", Summary: "Tears an environment down now.",
			Examples: []string{"12345"}, Mutates: true,
			Parse: targetArg("environment name or change number"),
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				name, err := b.Destroy(ctx, args.(string), call.By)
				if err != nil {
					return chat.Message{}, fmt.Errorf("destroying %s: %w", args, err)
				}
				return chat.Textf("Destroyed environment %s.", name), nil
			},
		},
		{
			Name: "retest", Usage: "<env|change>", Summary: "Runs the tests again on a live environment without redeploying.",
			Examples: []string{"12345"}, Mutates: true,
			Parse: targetArg("environment name or change number"),
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				t, err := b.Retest(ctx, args.(string), call.By, call.ReplyTo.Encode())
				if err != nil {
					return chat.Message{}, fmt.Errorf("retesting %s: %w", args, err)
				}
				return chat.Message{
					Title:  fmt.Sprintf("Retesting %s (run #%d, %s).", t.Env, t.RunID, queueText(t.Position)),
					Fields: []chat.Field{{Name: "log", Value: b.RunURL(t.RunID)}},
				}, nil
			},
		},
		{
			Name: "extend", Usage: "<env> <duration>", Summary: "Moves an environment's expiry later.",
			Examples: []string{"e-12345-abc 2d"}, Mutates: true,
			Parse: func(args []string) (any, error) {
				if len(args) != 2 {
					return nil, usageErr("expected an environment name and a duration")
				}
				if !validTarget(args[0]) {
					return nil, usageErr("%q is not an environment name", clip(args[0]))
				}
				d, err := ParseTTL(args[1])
				if err != nil {
					return nil, err
				}
				return extendArgs{env: args[0], d: d}, nil
			},
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				a := args.(extendArgs)
				exp, err := b.Extend(ctx, a.env, a.d, call.By)
				if err != nil {
					return chat.Message{}, fmt.Errorf("extending %s: %w", a.env, err)
				}
				return chat.Textf("%s now expires %s (in %s).", a.env, exp.UTC().Format("2006-01-02 15:04 MST"), human(exp.Sub(opts.Now()))), nil
			},
		},
		keepCommand(b, "keep", true),
		keepCommand(b, "unkeep", false),
		{
			Name: "sleep", Usage: "<env|change>", Summary: "Scales an environment down to nothing; its URL, history and matrix stay. !wake brings it back.",
			Examples: []string{"12345"}, Mutates: true,
			Parse: targetArg("environment name or change number"),
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				name, err := b.Sleep(ctx, args.(string), call.By)
				if err != nil {
					return chat.Message{}, fmt.Errorf("putting %s to sleep: %w", args, err)
				}
				return chat.Textf("%s is asleep; wake it with %swake %s.", name, opts.Prefix, name), nil
			},
		},
		{
			Name: "wake", Usage: "<env|change>", Summary: "Wakes an environment that sleeps and waits until it is ready.",
			Examples: []string{"12345"}, Mutates: true,
			Parse: targetArg("environment name or change number"),
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				name, url, err := b.Wake(ctx, args.(string), call.By)
				if err != nil {
					return chat.Message{}, fmt.Errorf("waking %s: %w", args, err)
				}
				return chat.Textf("%s is awake and ready: %s", name, url), nil
			},
		},
		{
			Name: "sweep", Summary: "Runs a cleanup sweep now and reports what it removed.",
			Mutates: true, Parse: noArgs,
			Run: func(ctx context.Context, call *Call, _ any) (chat.Message, error) {
				s, err := b.Sweep(ctx, call.By)
				if err != nil {
					return chat.Message{}, fmt.Errorf("sweeping: %w", err)
				}
				return FormatSweep(s), nil
			},
		},
		{
			Name: "logs", Usage: "<env|change|#run>", Summary: "Gives the link to a run's log page (the latest run of an env or change).",
			Examples: []string{"12345", "#42"},
			Parse: func(args []string) (any, error) {
				if len(args) != 1 {
					return nil, usageErr("expected one environment name, change number or #run")
				}
				if id, ok := strings.CutPrefix(args[0], "#"); ok {
					n, err := positive(id)
					if err != nil {
						return nil, usageErr("%q is not a run number; expected e.g. #42", clip(args[0]))
					}
					return int64(n), nil
				}
				return targetArg("environment name, change number or #run")(args)
			},
			Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
				if id, ok := args.(int64); ok {
					return chat.Textf("Run #%d: %s", id, b.RunURL(id)), nil
				}
				env, runs, err := b.Status(ctx, args.(string))
				if err != nil {
					return chat.Message{}, fmt.Errorf("logs of %s: %w", args, err)
				}
				if len(runs) == 0 {
					return chat.Textf("%s has no runs yet.", env.Name), nil
				}
				r := runs[0]
				return chat.Textf("Run #%d of %s (%s): %s", r.ID, env.Name, runState(r), b.RunURL(r.ID)), nil
			},
		},
		{
			Name: "help", Usage: "[command]", Summary: "Lists the commands you can run, or details one.",
			Examples: []string{"env"},
			Parse: func(args []string) (any, error) {
				if len(args) > 1 {
					return nil, usageErr("expected at most one command name")
				}
				if len(args) == 1 {
					return args[0], nil
				}
				return "", nil
			},
			Run: func(_ context.Context, call *Call, args any) (chat.Message, error) {
				return call.Router.Help(call.From, args.(string)), nil
			},
		},
		whoamiCommand(),
	}
}

type extendArgs struct {
	env string
	d   time.Duration
}

func keepCommand(b Backend, name string, keep bool) *Command {
	summary := "Protects an environment from automatic cleanup."
	if !keep {
		summary = "Lets automatic cleanup remove an environment again."
	}
	return &Command{
		Name: name, Usage: "<env>", Summary: summary, Examples: []string{"e-12345-abc"}, Mutates: true,
		Parse: targetArg("environment name"),
		Run: func(ctx context.Context, call *Call, args any) (chat.Message, error) {
			env := args.(string)
			if err := b.Keep(ctx, env, keep, call.By); err != nil {
				return chat.Message{}, fmt.Errorf("%s %s: %w", name, env, err)
			}
			if keep {
				return chat.Textf("%s is protected from automatic cleanup.", env), nil
			}
			return chat.Textf("%s is no longer protected from automatic cleanup.", env), nil
		},
	}
}

func exampleOverride(components []string) string {
	if len(components) == 0 {
		return "component=abc123"
	}
	return components[0] + "=abc123"
}

func queueText(pos int) string {
	if pos <= 0 {
		return "starting now"
	}
	return "queue position " + strconv.Itoa(pos)
}

func changeText(change, ps int) string {
	if ps == 0 {
		return strconv.Itoa(change)
	}
	return fmt.Sprintf("%d/%d", change, ps)
}

func formatEnvs(list []*run.Env, now time.Time, dashboard string) chat.Message {
	if len(list) == 0 {
		return chat.Textf("No live environments.")
	}
	// Newest first; only the first maxListed need ordering.
	shown := slices.Clone(list)
	slices.SortFunc(shown, func(a, b *run.Env) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.Name, b.Name))
	})
	m := chat.Message{Title: fmt.Sprintf("%d live environments:", len(list))}
	for _, e := range shown[:min(len(shown), maxListed)] {
		m.Lines = append(m.Lines, envLine(e, now))
	}
	if n := len(list) - maxListed; n > 0 {
		m.Lines = append(m.Lines, fmt.Sprintf("and %d more: %s", n, dashboard))
	}
	return m
}

func envLine(e *run.Env, now time.Time) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s  %s  %s  age %s", e.Name, changeText(e.Change, e.PatchSet), e.Status, human(now.Sub(e.CreatedAt)))
	switch {
	case e.Protected:
		sb.WriteString("  kept")
	case !e.ExpiresAt.IsZero():
		fmt.Fprintf(&sb, "  expires in %s", human(e.ExpiresAt.Sub(now)))
	}
	if e.Kind == run.EnvCustom && len(e.Matrix) > 0 {
		sb.WriteString("  " + matrixText(e.Matrix))
	}
	if e.URL != "" {
		sb.WriteString("  " + e.URL)
	}
	return sb.String()
}

func formatStatus(env *run.Env, runs []*run.Run, b Backend, now time.Time) chat.Message {
	m := chat.Message{Title: fmt.Sprintf("%s: change %s, %s", env.Name, changeText(env.Change, env.PatchSet), env.Status)}
	if env.URL != "" {
		m.Fields = append(m.Fields, chat.Field{Name: "url", Value: env.URL})
	}
	if len(env.Matrix) > 0 {
		m.Fields = append(m.Fields, chat.Field{Name: "matrix", Value: matrixText(env.Matrix)})
	}
	if len(runs) == 0 {
		m.Lines = append(m.Lines, "No runs yet.")
	}
	for _, r := range runs[:min(len(runs), maxRunsShown)] {
		m.Lines = append(m.Lines, fmt.Sprintf("run #%d  ps %d  %s  %s ago  %s", r.ID, r.PatchSet, runState(r), human(now.Sub(r.CreatedAt)), b.RunURL(r.ID)))
	}
	return m
}

func runState(r *run.Run) string {
	if r.Finished() {
		return string(r.Result)
	}
	return string(r.State)
}

func matrixText(m run.Matrix) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

// human renders a duration coarsely: 45s, 12m, 3h, 2d5h.
func human(d time.Duration) string {
	if d < 0 {
		return "0s"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	days := int(d / (24 * time.Hour))
	if h := int((d % (24 * time.Hour)).Hours()); h > 0 {
		return fmt.Sprintf("%dd%dh", days, h)
	}
	return fmt.Sprintf("%dd", days)
}
