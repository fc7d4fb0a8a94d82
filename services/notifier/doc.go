// Package notifier is the last stage: it writes DUCC's JSON-lines notification file and
// publishes conversion.completed / conversion.failed for downstream automation.
package notifier
