// Package wishlist reads DUCC v1 wishlists: which images to publish, into which CernVM-FS repository, under which thin-image names.
package wishlist
