// Package commands is ductbot's chat command router: the built-in commands,
// each a small self-describing value, their parsing, permissions, per-user
// limits and the generated help. It knows nothing about chat networks: an
// adapter hands it a chat.Incoming and renders the chat.Message it returns.
package commands

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ductbot/ductbot/internal/suggest"

	"github.com/ductbot/ductbot/bot/chat"
	"github.com/ductbot/ductbot/core/pipeline"
	"github.com/ductbot/ductbot/core/run"
	"github.com/ductbot/ductbot/core/store"
)

// Backend is what the commands need from the pipeline. core/pipeline
// implements it; tests use a fake.
type Backend interface {
	RequestEnv(ctx context.Context, req pipeline.EnvRequest) (pipeline.Ticket, error)
	Envs(ctx context.Context) ([]*run.Env, error)                            // live environments
	Status(ctx context.Context, target string) (*run.Env, []*run.Run, error) // target: env name or change number; newest run first
	Destroy(ctx context.Context, target, by string) (string, error)          // returns the env name destroyed
	Retest(ctx context.Context, target, by string, reply string) (pipeline.Ticket, error)
	Extend(ctx context.Context, env string, d time.Duration, by string) (time.Time, error) // returns new expiry
	Keep(ctx context.Context, env string, keep bool, by string) error                      // protect from automatic cleanup
	Sweep(ctx context.Context, by string) (run.SweepSummary, error)                        // run a cleanup sweep now
	Sleep(ctx context.Context, target, by string) (string, error)                          // scale an environment to 0; returns its name
	Wake(ctx context.Context, target, by string) (name, url string, err error)             // restore it and wait for ready
	RunURL(runID int64) string
	DashboardURL() string
	Components() []string // configured component names
}

// UserError is implemented by backend errors whose message is written for
// the person in the channel (a capacity refusal, say). The router shows
// UserMessage as the reply; other errors are logged and answered with a
// generic message so internal details do not leak into chat.
type UserError interface {
	error
	UserMessage() string
}

// Command is one chat command. Parse is pure: it checks the arguments and
// returns what Run needs, or an error wrapping ErrUsage that says what was
// expected. Run does the work through the Backend.
type Command struct {
	Name     string   // without prefix, e.g. "env"
	Usage    string   // arguments, e.g. "<change>[/<patchset>] [component=ref ...]"
	Summary  string   // one line
	Examples []string // argument lists, shown with the prefix and name
	Mutates  bool     // changes something: logged with who ran it, allow-listed by PermissionConfig.Default

	Parse func(args []string) (any, error)
	Run   func(ctx context.Context, call *Call, args any) (chat.Message, error)
}

// Call is the context of one command invocation.
type Call struct {
	From    chat.Identity
	By      string       // From.String(): the identity stored as RequestedBy
	ReplyTo chat.ReplyTo // where later results go
	Router  *Router
}

// Options configure a Router. Zero values pick the documented defaults.
type Options struct {
	Prefix         string           // command prefix; default "!"
	Permissions    *Permissions     // default: OpenPermissions
	RatePerMinute  int              // commands per user per minute; default 20; negative: unlimited
	MaxEnvsPerUser int              // live !env environments per user; default 3; negative: unlimited
	MaxTTL         time.Duration    // largest ttl= accepted; 0: no check here (the backend may cap)
	CallTimeout    time.Duration    // bound on one command's backend calls; default 2m
	Logger         *slog.Logger     // default slog.Default()
	Now            func() time.Time // default time.Now
}

// Router parses lines, checks permission and limits, runs commands and
// builds replies. It is safe for concurrent use.
type Router struct {
	backend  Backend
	opts     Options
	commands []*Command // sorted by name
	byName   map[string]*Command
	limiter  *limiter
	log      *slog.Logger
}

// New builds a router with the built-in commands registered.
func New(backend Backend, opts Options) *Router {
	if opts.Prefix == "" {
		opts.Prefix = "!"
	}
	if opts.Permissions == nil {
		opts.Permissions = OpenPermissions()
	}
	if opts.RatePerMinute == 0 {
		opts.RatePerMinute = 20
	}
	if opts.MaxEnvsPerUser == 0 {
		opts.MaxEnvsPerUser = 3
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Router{
		backend: backend,
		opts:    opts,
		byName:  map[string]*Command{},
		limiter: newLimiter(opts.RatePerMinute, opts.Now),
		log:     opts.Logger,
	}
	for _, c := range builtins(backend, opts) {
		r.Register(c)
	}
	return r
}

// Register adds a command, replacing one of the same name.
func (r *Router) Register(c *Command) {
	if old, ok := r.byName[c.Name]; ok {
		r.commands = slices.DeleteFunc(r.commands, func(x *Command) bool { return x == old })
	}
	r.byName[c.Name] = c
	r.commands = append(r.commands, c)
	slices.SortFunc(r.commands, func(a, b *Command) int { return strings.Compare(a.Name, b.Name) })
}

// Commands returns the registered commands sorted by name.
func (r *Router) Commands() []*Command { return slices.Clone(r.commands) }

// Prefix is the configured command prefix.
func (r *Router) Prefix() string { return r.opts.Prefix }

// maxLine bounds the input the router looks at; chat lines are short.
const maxLine = 2000

// Handle answers one line. It returns ok=false when the line is not a
// command (no prefix and not mentioned), so the adapter stays silent. Every
// other line gets a non-empty reply. Handle implements chat.Handler.
func (r *Router) Handle(ctx context.Context, in chat.Incoming) (chat.Message, bool) {
	text := strings.TrimSpace(in.Text)
	switch {
	case strings.HasPrefix(text, r.opts.Prefix):
		text = text[len(r.opts.Prefix):]
	case in.Mentioned:
	default:
		return chat.Message{}, false
	}
	fields := strings.Fields(text)
	if len(fields) == 0 {
		if !in.Mentioned {
			return chat.Message{}, false // a lone "!" is not a command
		}
		fields = []string{"help"}
	}
	if len(text) > maxLine {
		return chat.Errorf("That line is too long (%d bytes); commands are short, see %shelp.", len(text), r.opts.Prefix), true
	}
	name := strings.ToLower(fields[0])
	who := in.From.String()
	if !r.limiter.allow(who) {
		return chat.Errorf("Slow down: at most %d commands a minute per person. Try again in a minute.", r.opts.RatePerMinute), true
	}
	cmd, ok := r.byName[name]
	if !ok {
		return r.unknown(name, in.From), true
	}
	if !r.opts.Permissions.Allowed(cmd, in.From) {
		r.log.Info("chat command refused", "command", cmd.Name, "by", who)
		return chat.Errorf("Sorry, you (%s) are not allowed to run %s%s. Ask an admin to add you to chat.permissions.", clip(who), r.opts.Prefix, cmd.Name), true
	}
	args, err := cmd.Parse(fields[1:])
	if err != nil {
		return r.usageError(cmd, err), true
	}
	if cmd.Mutates {
		r.log.Info("chat command", "command", cmd.Name, "by", who)
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	call := &Call{From: in.From, By: who, ReplyTo: in.ReplyTo, Router: r}
	call.ReplyTo.User = who
	reply, err := cmd.Run(ctx, call, args)
	if err != nil {
		return r.runError(cmd, who, err), true
	}
	if reply.Empty() {
		reply = chat.Textf("Done.")
	}
	return reply, true
}

func (r *Router) unknown(name string, from chat.Identity) chat.Message {
	var names []string
	for _, c := range r.commands {
		if r.opts.Permissions.Allowed(c, from) {
			names = append(names, c.Name)
		}
	}
	if best := suggest.Closest(name, names); best != "" {
		return chat.Errorf("Unknown command %q. Did you mean %s%s? See %shelp.", clip(name), r.opts.Prefix, best, r.opts.Prefix)
	}
	return chat.Errorf("Unknown command %q. See %shelp for what I can do.", clip(name), r.opts.Prefix)
}

func (r *Router) usageError(cmd *Command, err error) chat.Message {
	msg := err.Error()
	if errors.Is(err, ErrUsage) {
		msg = strings.TrimPrefix(msg, ErrUsage.Error()+": ")
	}
	return chat.Message{Error: true, Lines: []string{
		upperFirst(msg) + ".",
		"Usage: " + r.usage(cmd),
	}}
}

func (r *Router) runError(cmd *Command, who string, err error) chat.Message {
	if ue, ok := errors.AsType[UserError](err); ok {
		return chat.Errorf("%s", ue.UserMessage())
	}
	switch {
	case errors.Is(err, ErrUsage):
		return r.usageError(cmd, err)
	case errors.Is(err, store.ErrNotFound):
		return chat.Errorf("Not found: no environment, change or run matches that. See %senvs.", r.opts.Prefix)
	case errors.Is(err, context.DeadlineExceeded):
		r.log.Warn("chat command timed out", "command", cmd.Name, "by", who, "err", err)
		return chat.Errorf("%s%s took too long and was given up; try again later.", r.opts.Prefix, cmd.Name)
	}
	r.log.Error("chat command failed", "command", cmd.Name, "by", who, "err", err)
	return chat.Errorf("%s%s failed on my side; the error is logged for the operators.", r.opts.Prefix, cmd.Name)
}

func (r *Router) usage(cmd *Command) string {
	u := r.opts.Prefix + cmd.Name
	if cmd.Usage != "" {
		u += " " + cmd.Usage
	}
	return u
}

// Help lists the commands from may run, or details one command.
func (r *Router) Help(from chat.Identity, name string) chat.Message {
	if name != "" {
		name = strings.ToLower(strings.TrimPrefix(name, r.opts.Prefix))
		cmd, ok := r.byName[name]
		if !ok {
			return r.unknown(name, from)
		}
		m := chat.Message{Title: r.usage(cmd), Lines: []string{cmd.Summary}}
		for _, ex := range cmd.Examples {
			m.Lines = append(m.Lines, "e.g. "+r.opts.Prefix+cmd.Name+" "+ex)
		}
		if !r.opts.Permissions.Allowed(cmd, from) {
			m.Lines = append(m.Lines, "You are not allowed to run it.")
		}
		return m
	}
	m := chat.Message{Title: "Commands you can run (" + r.opts.Prefix + "help <command> for details):"}
	for _, c := range r.commands {
		if r.opts.Permissions.Allowed(c, from) {
			m.Lines = append(m.Lines, r.usage(c)+" — "+c.Summary)
		}
	}
	return m
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	if c := s[0]; 'a' <= c && c <= 'z' {
		return string(c-'a'+'A') + s[1:]
	}
	return s
}
