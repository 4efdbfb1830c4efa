-- Investigation cases (issue 13, storage/cases.py). Times are UTC epoch milliseconds; JSON is
-- TEXT. Ids are random ("case_" and 8 base32 characters), not numbered: several service
-- processes and the command line open cases at once, and a copy of the store (a backup, the
-- demo's) must not hand out an id that another store already gave to another case.
CREATE TABLE cases (
    id        TEXT PRIMARY KEY,
    title     TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at INTEGER NOT NULL,
    opened_by TEXT NOT NULL,
    closed_at INTEGER,
    closed_by TEXT,
    outcome   TEXT,
    -- The findings as the caller gave them when the case was opened (canonical JSON), or NULL;
    -- its SHA-256 is in the audit entry of the opening.
    findings  TEXT
);
CREATE INDEX cases_opened ON cases (opened_at);

-- A case's history, append-only: numbered 1, 2, ... per case in the order it was written.
CREATE TABLE case_events (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('open', 'findings', 'note', 'link', 'close')),
    text        TEXT,
    -- A linked campaign; no foreign key: the history says what was decided even if the
    -- campaign's rows are ever pruned.
    campaign_id TEXT,
    data        TEXT,
    PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;
