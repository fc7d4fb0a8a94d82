package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
)

func newCheckImageSyntax(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check-image-syntax IMAGE",
		Short: "Check an image reference and print its parts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := imageref.Parse(args[0])
			if err != nil {
				return &exitError{exitSomeFailed, err}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "name:       %s\nscheme:     %s\nregistry:   %s\nrepository: %s\ntag:        %s\ndigest:     %s\nwildcard:   %t\n",
				r.String(), r.Scheme, r.Registry, r.Repository, r.Tag, r.Digest, r.Wildcard())
			return nil
		},
	}
}

func newDownloadManifest(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "download-manifest IMAGE",
		Short: "Print the manifest (or index) of an image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := imageref.Parse(args[0])
			if err != nil {
				return &exitError{exitSomeFailed, err}
			}
			ref, err := r.GGCR()
			if err != nil {
				return &exitError{exitSomeFailed, err}
			}
			ctx := registry.ContextWithScheme(cmd.Context(), r.Scheme, r.Registry) // the image's scheme only
			opts, err := g.registryOptions()
			if err != nil {
				return err
			}
			desc, err := remote.Get(ref, registry.Options(ctx, opts...)...)
			if err != nil {
				return &exitError{exitSomeFailed, fmt.Errorf("fetching the manifest of %s: %w", r, err)}
			}
			var v any
			if err := json.Unmarshal(desc.Manifest, &v); err != nil {
				os.Stdout.Write(desc.Manifest)
				return nil
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		},
	}
}
