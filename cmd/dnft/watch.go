package main

import (
	"fmt"
	"log"
	"time"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newWatchCmd(a *app) *cobra.Command {
	var (
		state    string
		interval time.Duration
	)
	c := &cobra.Command{
		Use:   "watch [--state FILE]",
		Short: "Keep dnft's tables as they should be (runs until stopped)",
		Long: `Listen to the namespace's nftables notifications and, when someone else
flushes, deletes or changes dnft's tables, check for drift and repair it in
one batch (as dnft repair does), within a second.

The truth is the last known good state: --state FILE (a state saved with
dnft save) or the records at start, then every commit of dnft. The watch
knows dnft's commits (operations, repairs, dnft reset) by the commit
journal that dnft writes in its lock file before each batch, not by a
process name, and applies them to its copy of the records without
reading the tables or taking the namespace lock: it costs dnft operations
nothing.

Logs to stderr. SIGTERM or SIGINT stop it cleanly (exit 0).`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			saved, err := readStateFlag(c.Context(), c.InOrStdin(), state)
			if err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			logger := log.New(c.ErrOrStderr(), "dnft watch: ", log.LstdFlags|log.Lmicroseconds)
			return a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				fw.SetWarnFunc(func(err error) { logger.Printf("warning: %v", err) })
				err := fw.Watch(c.Context(), dnft.WatchOptions{
					Saved:    saved,
					Logf:     logger.Printf,
					Interval: interval,
					Ready:    func() { logger.Printf("watching %s", fw.NetNS()) },
				})
				if err == nil {
					logger.Printf("stopped")
				}
				return err
			})
		},
	}
	c.Flags().StringVar(&state, "state", "", "the last known good state to start from (a state saved with dnft save)")
	c.Flags().DurationVar(&interval, "interval", 30*time.Second, "period of the checks made without notifications")
	return c
}
