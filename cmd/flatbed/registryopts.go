package main

import "flatbed.dev/pkg/registry"

// registryOptions are the registry settings of every stage and command that talks to
// registries (the resolver, the ingester, the thin pusher, the relocator, wildcard expansion,
// download-manifest, lazy, export and import, prune-images, and the front door's check of a
// wish): the registry timeout, how certificates are checked (--insecure, --root-ca, as
// overlaybd's convertor takes them) and the client certificates shown to registries that ask
// for one (--cert-dir in docker's certs.d layout, --client-cert with --client-key). The key
// files are read here and stay in this process: no event carries them, so 'flatbed serve'
// processes are given their own. Plain HTTP is the image's scheme, http://.
func (g *globals) registryOptions() ([]registry.Option, error) {
	tlsOpt, err := g.registryTLS.Option()
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	return []registry.Option{registry.WithTimeout(g.registryWait), tlsOpt}, nil
}
