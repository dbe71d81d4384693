package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newRestoreCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "restore [FILE|-]",
		Short: "Program a saved state, in one batch",
		Long: `Program the state that dnft save printed (read from FILE, or from stdin when
FILE is - or left out) in ONE batch, whatever the namespace holds: dnft's
tables are deleted and created again with the saved networks, ports, ingress
ports and DOCKER-USER rules, reusing their sequence numbers, so that the
ruleset reads as it did when it was saved (counters start from zero).
Restoring what the namespace already holds sends nothing. Nothing outside
dnft's tables is touched.

A bad document is refused (exit 2) with a message naming the field, and
nothing is changed.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("%sunexpected argument %q", cmdPrefix(c), args[1])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			path := "-"
			if len(args) == 1 {
				path = args[0]
			}
			s, err := readStateFile(c.Context(), c.InOrStdin(), path)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			return a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				fw.SetWarnFunc(warnTo(c.ErrOrStderr()))
				return fw.Restore(c.Context(), s)
			})
		},
	}
}

// readStateFile reads and parses a state document from path, or from
// stdin for "-". Every error is bad input (a FieldError): the file is
// named in the message.
func readStateFile(ctx context.Context, stdin io.Reader, path string) (dnft.State, error) {
	var (
		data []byte
		err  error
	)
	name := path
	if path == "-" {
		name = "stdin"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		reason := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			reason = "no such file"
		}
		return dnft.State{}, &dnft.FieldError{Field: "state file", Value: path, Reason: reason}
	}
	s, err := dnft.ParseStateContext(ctx, data)
	if err != nil {
		return dnft.State{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// readStateFlag reads the --state file, if one was given.
func readStateFlag(ctx context.Context, stdin io.Reader, path string) (*dnft.State, error) {
	if path == "" {
		return nil, nil
	}
	s, err := readStateFile(ctx, stdin, path)
	if err != nil {
		return nil, err
	}
	return &s, nil
}
