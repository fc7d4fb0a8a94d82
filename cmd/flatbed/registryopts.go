package main

import "flatbed.dev/pkg/registry"

// registryOptions are the registry settings of every stage and command that talks to
// registries (the resolver, the ingester, the thin pusher, the relocator, wildcard expansion,
// download-manifest): the registry timeout, and how certificates are checked (--insecure,
// --root-ca, as overlaybd's convertor takes them). Plain HTTP is the image's scheme, http://.
func (g *globals) registryOptions() ([]registry.Option, error) {
	tlsOpt, err := g.registryTLS.Option()
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	return []registry.Option{registry.WithTimeout(g.registryWait), tlsOpt}, nil
}
