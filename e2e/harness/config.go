package harness

// WithConfig appends YAML to the registry's config.yml: top-level keys the harness does not
// write itself, e.g. a notifications: section with endpoints.
func WithConfig(extra string) RegistryOption {
	return func(r *Registry) { r.extraConfig += extra }
}
