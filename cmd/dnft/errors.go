package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1 // kernel or system error
	exitBadInput = 2 // usage error or invalid value; nothing was changed
)

// usageError is a command-line usage error (unknown flag or command,
// missing or extra argument). Its command's usage is printed with it.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErr(err error) error { return &usageError{err} }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// inputError is bad input that is not about one field's value, such as an
// unknown network option.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func inputErrorf(format string, args ...any) error {
	return &inputError{fmt.Sprintf(format, args...)}
}

// exitStatuser is an error of a command that already printed its own
// diagnostics and chose its exit code (dnft iptables and iptables-save
// use iptables' codes).
type exitStatuser interface{ exitStatus() int }

// exitCode maps an error to the process exit code: the code an
// exitStatuser carries, 2 for bad input anywhere in the error chain, 1 for
// anything else.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var es exitStatuser
	if errors.As(err, &es) {
		return es.exitStatus()
	}
	if badInput(err) || needsRoot(err) {
		return exitBadInput
	}
	return exitFailure
}

// needsRoot reports whether err comes from the kernel refusing access:
// dnft needs root (its capabilities) for netlink and namespaces.
func needsRoot(err error) bool {
	return errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0
}

// rootHint is printed after an error that needsRoot.
const rootHint = "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run dnft as root"

func badInput(err error) bool {
	var (
		ue *usageError
		ie *inputError
		fe *dnft.FieldError
	)
	return errors.As(err, &ue) || errors.As(err, &ie) || errors.As(err, &fe) ||
		errors.Is(err, dnft.ErrNotInitialized)
}

// printError prints err as "dnft: <message>" (one prefix per line of a
// joined error), followed by cmd's usage for usage errors.
func printError(w io.Writer, cmd *cobra.Command, err error) {
	var es exitStatuser
	if errors.As(err, &es) {
		return // the command printed its own diagnostics
	}
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted: " + msg
	}
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(w, "dnft: %s\n", line)
	}
	if needsRoot(err) {
		fmt.Fprintf(w, "dnft: %s\n", rootHint)
	}
	var ue *usageError
	if errors.As(err, &ue) && cmd != nil {
		fmt.Fprintf(w, "\n%s", cmd.UsageString())
	}
}
