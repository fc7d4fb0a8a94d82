// Package beneathtest makes the hostile entries an image can leave where a writer into its
// tree wants to write, and checks that nothing outside the tree was touched.
package beneathtest
