package lazy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	// The MySQL/MariaDB driver of database/sql.
	_ "github.com/go-sql-driver/mysql"

	"flatbed.dev/pkg/lazy"
)

// The tables of overlaybd's convertor (its --db-type mysql), each with a format column, and
// for layers the diff ID and descriptor annotations a converted layer needs to be named in a
// manifest without reading it again. ASCII: every value is a host, a path, a digest or a
// media type, and the longer keys fit InnoDB's 3072-byte limit.
var sqlSchema = []string{
	"CREATE TABLE IF NOT EXISTS `overlaybd_layers` (" +
		"`host` varchar(255) NOT NULL," +
		"`repo` varchar(255) NOT NULL," +
		"`chain_id` varchar(255) NOT NULL COMMENT 'chain-id of the normal image layer'," +
		"`format` varchar(64) NOT NULL DEFAULT 'overlaybd' COMMENT 'lazy-pull format (flatbed)'," +
		"`data_digest` varchar(255) NOT NULL COMMENT 'digest of the converted layer'," +
		"`data_size` bigint(20) NOT NULL COMMENT 'size of the converted layer'," +
		"`diff_id` varchar(255) NOT NULL DEFAULT '' COMMENT 'diff ID of the converted layer (flatbed)'," +
		"`annotations` text COMMENT 'descriptor annotations of the converted layer, JSON (flatbed)'," +
		"PRIMARY KEY (`host`,`repo`,`chain_id`,`format`)," +
		"KEY `index_registry_chainId` (`host`,`chain_id`) USING BTREE" +
		") DEFAULT CHARSET=ascii",
	"CREATE TABLE IF NOT EXISTS `overlaybd_manifests` (" +
		"`host` varchar(255) NOT NULL," +
		"`repo` varchar(255) NOT NULL," +
		"`src_digest` varchar(255) NOT NULL COMMENT 'digest of the normal image manifest'," +
		"`out_digest` varchar(255) NOT NULL COMMENT 'digest of the converted manifest'," +
		"`data_size` bigint(20) NOT NULL COMMENT 'size of the converted manifest'," +
		"`mediatype` varchar(255) NOT NULL COMMENT 'mediatype of the converted image manifest'," +
		"`format` varchar(64) NOT NULL DEFAULT 'overlaybd' COMMENT 'lazy-pull format, with -referrer for referrers (flatbed)'," +
		"PRIMARY KEY (`host`,`repo`,`src_digest`,`mediatype`,`format`)," +
		"KEY `index_registry_src_digest` (`host`,`src_digest`) USING BTREE" +
		") DEFAULT CHARSET=ascii",
}

// SQL is lazy.Dedup in a MySQL or MariaDB database with overlaybd's convertor's tables
// (created when missing), shared by every replica that names the same database. A layer is
// recorded per repository it is in, as the convertor records it; a lookup prefers the
// record of the repository it is wanted in, else any repository of the registry.
type SQL struct{ db *sql.DB }

var _ lazy.Dedup = (*SQL)(nil)

// OpenSQL connects to dsn (go-sql-driver's form, user:pass@tcp(host:port)/dbname, as the
// convertor's --db-str) and creates the tables when missing. Errors never repeat the DSN: it
// holds the password.
func OpenSQL(ctx context.Context, dsn string) (*SQL, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, fmt.Errorf("the dedup database's DSN (--db-str) is not user:pass@tcp(host:port)/dbname: %w", redact(err, dsn))
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to the dedup database (--db-str): %w", redact(err, dsn))
	}
	for _, q := range sqlSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("creating the dedup tables: %w", err)
		}
	}
	return &SQL{db: db}, nil
}

// Close closes the connections.
func (s *SQL) Close() error { return s.db.Close() }

func redact(err error, dsn string) error {
	if _, rest, ok := strings.Cut(dsn, ":"); ok {
		if pass, _, ok := strings.Cut(rest, "@"); ok && pass != "" {
			return errors.New(strings.ReplaceAll(err.Error(), pass, "***"))
		}
	}
	return err
}

// hostRepo splits "registry/repository".
func hostRepo(s string) (string, string) {
	h, r, _ := strings.Cut(s, "/")
	return h, r
}

func (s *SQL) Layer(ctx context.Context, k lazy.LayerKey) (lazy.Blob, bool, error) {
	host, repo := hostRepo(k.Target)
	var b lazy.Blob
	var gotRepo string
	var ann sql.NullString
	err := s.db.QueryRowContext(ctx, "SELECT `repo`, `data_digest`, `data_size`, `diff_id`, `annotations` FROM `overlaybd_layers` "+
		"WHERE `host` = ? AND `chain_id` = ? AND `format` = ? ORDER BY (`repo` = ?) DESC LIMIT 1",
		host, k.ChainID.String(), k.Format, repo).Scan(&gotRepo, &b.Digest, &b.Size, &b.DiffID, &ann)
	if errors.Is(err, sql.ErrNoRows) {
		return lazy.Blob{}, false, nil
	}
	if err != nil {
		return lazy.Blob{}, false, fmt.Errorf("reading overlaybd_layers: %w", err)
	}
	if ann.Valid && ann.String != "" {
		_ = json.Unmarshal([]byte(ann.String), &b.Annotations) // unreadable annotations: the digest check still holds
	}
	b.Repository = host + "/" + gotRepo
	return b, true, nil
}

func (s *SQL) PutLayer(ctx context.Context, k lazy.LayerKey, b lazy.Blob) error {
	host, repo := hostRepo(b.Repository)
	ann, err := json.Marshal(b.Annotations)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, "INSERT INTO `overlaybd_layers` (`host`, `repo`, `chain_id`, `format`, `data_digest`, `data_size`, `diff_id`, `annotations`) "+
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE `data_digest` = VALUES(`data_digest`), `data_size` = VALUES(`data_size`), "+
		"`diff_id` = VALUES(`diff_id`), `annotations` = VALUES(`annotations`)",
		host, repo, k.ChainID.String(), k.Format, b.Digest, b.Size, b.DiffID, string(ann))
	if err != nil {
		return fmt.Errorf("writing overlaybd_layers: %w", err)
	}
	return nil
}

// manifestFormat is the format column of a converted image: referrers are other manifests
// than plain conversions, so they are told apart there.
func manifestFormat(k lazy.ManifestKey) string {
	if k.Referrer {
		return k.Format + "-referrer"
	}
	return k.Format
}

func (s *SQL) Manifest(ctx context.Context, k lazy.ManifestKey) (lazy.Blob, bool, error) {
	host, repo := hostRepo(k.Target)
	var b lazy.Blob
	err := s.db.QueryRowContext(ctx, "SELECT `out_digest`, `data_size`, `mediatype` FROM `overlaybd_manifests` "+
		"WHERE `host` = ? AND `repo` = ? AND `src_digest` = ? AND `mediatype` = ? AND `format` = ?",
		host, repo, k.Source.String(), string(k.MediaType), manifestFormat(k)).Scan(&b.Digest, &b.Size, &b.MediaType)
	if errors.Is(err, sql.ErrNoRows) {
		return lazy.Blob{}, false, nil
	}
	if err != nil {
		return lazy.Blob{}, false, fmt.Errorf("reading overlaybd_manifests: %w", err)
	}
	b.Repository = k.Target
	return b, true, nil
}

func (s *SQL) PutManifest(ctx context.Context, k lazy.ManifestKey, b lazy.Blob) error {
	host, repo := hostRepo(b.Repository)
	_, err := s.db.ExecContext(ctx, "INSERT INTO `overlaybd_manifests` (`host`, `repo`, `src_digest`, `out_digest`, `data_size`, `mediatype`, `format`) "+
		"VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE `out_digest` = VALUES(`out_digest`), `data_size` = VALUES(`data_size`)",
		host, repo, k.Source.String(), b.Digest, b.Size, string(k.MediaType), manifestFormat(k))
	if err != nil {
		return fmt.Errorf("writing overlaybd_manifests: %w", err)
	}
	return nil
}

// None is a lazy.Dedup that remembers nothing (--db-type none): every layer is converted.
type None struct{}

func (None) Layer(context.Context, lazy.LayerKey) (lazy.Blob, bool, error) {
	return lazy.Blob{}, false, nil
}
func (None) PutLayer(context.Context, lazy.LayerKey, lazy.Blob) error { return nil }
func (None) Manifest(context.Context, lazy.ManifestKey) (lazy.Blob, bool, error) {
	return lazy.Blob{}, false, nil
}
func (None) PutManifest(context.Context, lazy.ManifestKey, lazy.Blob) error { return nil }
