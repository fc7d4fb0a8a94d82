// Package notification appends DUCC-compatible JSON-lines notifications to a file that several writers share.
package notification
