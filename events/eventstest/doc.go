// Package eventstest holds test doubles for code that publishes and handles flatbed events.
package eventstest
