package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dnft/dnft"
)

func newStateSaveCmd(a *app) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "save [-o FILE]",
		Short: "Print dnft's complete state as a JSON document",
		Long: `Print dnft's complete state as a versioned JSON document ({"version":1,...}):
the init options, the networks, the published ports, the ingress ports with
their reference counts and the DOCKER-USER rules (as their netlink encoding,
with the nft text for reading). Objects are sorted by creation, so the same
state always prints the same document. dnft restore and dnft apply read it;
dnft check, repair and watch take it with --state.

A DOCKER-USER rule that dnft cannot reproduce exactly (an expression kind its
netlink library does not know, an inline anonymous set) is refused with an
error rather than saved changed.`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			limitWholeTablesMemory()
			var doc []byte
			err := a.withFirewall(c.Context(), func(fw *dnft.Firewall) error {
				s, err := fw.Save(c.Context())
				if err != nil {
					return err
				}
				doc, err = s.Encode()
				return err
			})
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = c.OutOrStdout().Write(doc)
				return err
			}
			return writeFileAtomic(out, doc)
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write the document to FILE (mode 0600, replaced atomically) instead of stdout")
	return c
}

// writeFileAtomic writes data to a new file next to path and renames it
// over path, so that a reader sees the old or the new document.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}
