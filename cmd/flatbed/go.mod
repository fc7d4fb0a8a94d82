module flatbed.dev/cmd/flatbed

go 1.26.0

require (
	flatbed.dev/events v0.0.0
	flatbed.dev/pkg v0.0.0
	flatbed.dev/services/flattener v0.0.0
	flatbed.dev/services/ingester v0.0.0
	flatbed.dev/services/notifier v0.0.0
	flatbed.dev/services/resolver v0.0.0
	flatbed.dev/services/thinpusher v0.0.0
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/lmittmann/tint v1.2.1 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)

replace (
	flatbed.dev/events => ../../events
	flatbed.dev/pkg => ../../pkg
	flatbed.dev/services/flattener => ../../services/flattener
	flatbed.dev/services/ingester => ../../services/ingester
	flatbed.dev/services/notifier => ../../services/notifier
	flatbed.dev/services/resolver => ../../services/resolver
	flatbed.dev/services/thinpusher => ../../services/thinpusher
)
