-- The audit trail at scale (issue 16, docs/audit.md "Shards and the tree").
--
-- Appends no longer serialise on one head row: an entry joins one of 16 chains (shards), each
-- with its own head row, locked only by the appends to that shard. Numbers come from a
-- sequence, taken while the shard's row is locked, so within a shard they follow commit order.
-- A sealer then puts every settled entry, in number order, into one Merkle tree (RFC 9162)
-- and signs its head. Entries written before keep their hashes (formats 1 and 2): they are
-- shard 0's chain, and shard 0's head is the old head row. Adding columns with a constant
-- default rewrites no row, so this migration takes the same time for any size of trail.
CREATE TABLE audit_shards (
    shard INTEGER PRIMARY KEY,
    seq   BIGINT NOT NULL,   -- the shard's last entry (0 before its first)
    hash  TEXT NOT NULL      -- its hash ('' before the first)
);
INSERT INTO audit_shards (shard, seq, hash) SELECT 0, seq, hash FROM audit_head;
INSERT INTO audit_shards (shard, seq, hash) SELECT s, 0, '' FROM generate_series(1, 15) AS s;
DROP TABLE audit_head;

ALTER TABLE audit ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
-- The hash format: 1 (content_digest NULL) and 2 as before, 3 commits to the shard too.
ALTER TABLE audit ADD COLUMN fmt SMALLINT NOT NULL DEFAULT 2;

CREATE SEQUENCE audit_seq;
SELECT setval('audit_seq', COALESCE((SELECT MAX(seq) FROM audit), 0) + 1, false);

-- The tree: its size, the last entry sealed into it, its root and its compact range (the
-- roots of its perfect subtrees, largest first, as a JSON list of hex strings).
CREATE TABLE audit_tree (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    size       BIGINT NOT NULL,
    sealed_seq BIGINT NOT NULL,
    root       TEXT NOT NULL,
    frontier   TEXT NOT NULL
);
INSERT INTO audit_tree (one, size, sealed_seq, root, frontier) VALUES
    (1, 0, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '[]');

-- Leaf i of the tree is the entry seq; the leaf's hash is RFC 9162's of the entry's hash.
CREATE TABLE audit_leaves (
    leaf BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL UNIQUE
);
-- The roots of the tree's perfect subtrees of 256 leaves and more (level 8 up), kept as they
-- complete, so that a proof reads a few rows instead of hashing a whole trail.
CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);
-- Every signed tree head, newest last: a later one must extend each earlier one.
CREATE TABLE audit_tree_heads (
    size      BIGINT PRIMARY KEY,
    root      TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    token     TEXT NOT NULL
);
