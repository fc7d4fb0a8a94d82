// Package relocator is the stage of the relocated output: it copies the image a wish names,
// byte for byte and pinned to what the resolver read, under the wish's repository prefix with
// the name duffle gives it, and fails the wish when a digest would change.
package relocator
