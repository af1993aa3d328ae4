// Package cli is the command-line contract ductbot's commands share, on
// spf13/cobra: exit status 0 when done (and for --help), 1 when the command
// failed, 2 when it was called wrongly (an unknown command or flag, a
// missing or stray argument); every error printed once, on stderr, by
// Execute; help on stdout.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ductbot/ductbot/cmd/internal/buildinfo"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// UsageError is a mistake in how a command was called: exit status 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usage marks err as a usage error.
func Usage(err error) error { return UsageError{err} }

// Usagef is a new usage error.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// usageTemplate is cobra's, in the lower case of ductbot's other messages.
const usageTemplate = `{{if and .Runnable (not .HasAvailableSubCommands)}}usage: {{.UseLine}}{{else}}usage: {{.CommandPath}} COMMAND{{end}}{{if gt (len .Aliases) 0}}

aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

global flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Run "{{.CommandPath}} COMMAND --help" for a command's flags.{{end}}
`

// helpTemplate prints the long description, else the short one, then the
// usage.
const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}`

// Root prepares root, and every command added to it so far, for Execute:
// the usage and help templates, cobra's own printing silenced, flag errors
// and unknown commands as usage errors, groups (commands with
// subcommands and no action of their own) refusing to run without one.
// Call it after adding every command.
func Root(root *cobra.Command) *cobra.Command {
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetUsageTemplate(usageTemplate)
	root.SetHelpTemplate(helpTemplate)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Usagef("%s%w (see %s --help)", where(c), err, c.CommandPath())
	})
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]",
		Short: "help about a command",
		Long:  "Print a command's description, usage and flags.",
		// Added by cobra when it runs, after the walk below.
		DisableFlagsInUseLine: true,
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 {
				return Usagef("help: unknown command %q (see %s --help)", strings.Join(args, " "), c.Root().Name())
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	})
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true // each Use names its flags
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = unknownCommand
			c.RunE = func(c *cobra.Command, _ []string) error {
				return Usagef("%smissing command\n%s", where(c), strings.TrimRight(c.UsageString(), "\n"))
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root
}

// unknownCommand refuses an argument where a command name was expected.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return Usagef("%s (see %s --help)", msg, c.CommandPath())
}

// VersionCommand is the "version" command of the program name: it prints
// the module version, VCS revision and Go version (buildinfo.Line).
func VersionCommand(name string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print " + name + "'s module version, VCS revision and Go version",
		Args:  NoArgs,
		Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), buildinfo.Line(name)) },
	}
}

// NoArgs is a command's Args when it takes no arguments.
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("%sunexpected argument %q (see %s --help)", where(c), args[0], c.CommandPath())
	}
	return nil
}

// where is "COMMAND: " for a subcommand, its path without the root's name
// (which Execute prints), and "" for the root.
func where(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ") + ": "
}

// Execute runs root (prepared by Root) with args and returns the exit
// status, printing an error once on stderr, prefixed with the root's name.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	args = append([]string{}, args...) // not nil: cobra would read os.Args
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "-help" {
			args[i] = "--help" // the Go flag package's spelling, which ductbot took before cobra
		}
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, new(UsageError)):
		fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
		return ExitFail
	}
}
