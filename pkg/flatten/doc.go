// Package flatten builds the flat root file system of an image by applying its unpacked layers
// (layerfs directories) in order, the way `umoci raw unpack` lays out the same image.
package flatten
