// Package cvmfs publishes into a CernVM-FS repository through cvmfs_server on a publisher
// node: transactions (transaction, publish, abort -f), tar ingestion and deletions, one at a
// time per repository.
package cvmfs
