module flatbed.dev/services/thinpusher

go 1.26

require (
	flatbed.dev/events v0.0.0
	flatbed.dev/pkg v0.0.0
)

replace (
	flatbed.dev/events => ../../events
	flatbed.dev/pkg => ../../pkg
)
