-- The audit trail at scale (issue 16, docs/audit.md "Shards and the tree"); the PostgreSQL
-- migration of the same number says why. SQLite has one writer, so its appends all go to
-- shard 0 and its numbers have no gaps; the tables are the same, so that one verification and
-- one set of proofs serve both stores.
CREATE TABLE audit_shards (
    shard INTEGER PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_shards (shard, seq, hash) SELECT 0, seq, hash FROM audit_head;
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 15)
INSERT INTO audit_shards (shard, seq, hash) SELECT n, 0, '' FROM s;
DROP TABLE audit_head;

ALTER TABLE audit ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit ADD COLUMN fmt SMALLINT NOT NULL DEFAULT 2;

CREATE TABLE audit_tree (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    size       BIGINT NOT NULL,
    sealed_seq BIGINT NOT NULL,
    root       TEXT NOT NULL,
    frontier   TEXT NOT NULL
);
INSERT INTO audit_tree (one, size, sealed_seq, root, frontier) VALUES
    (1, 0, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '[]');

CREATE TABLE audit_leaves (
    leaf BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL UNIQUE
);
CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE audit_tree_heads (
    size      BIGINT PRIMARY KEY,
    root      TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    token     TEXT NOT NULL
);
