-- mss store, SQLite. Times are Unix milliseconds (UTC). Keep in step with
-- ../postgres/0001_initial.sql: same tables, columns and constraints.

CREATE TABLE mailboxes (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('PER', 'ORG', 'APP')),
    created_ms  INTEGER NOT NULL
);

-- Where synchronisation of one IMAP folder stands.
CREATE TABLE sync_state (
    mailbox_id      INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    folder          TEXT NOT NULL,
    uidvalidity     INTEGER NOT NULL,
    last_uid        INTEGER NOT NULL,
    highest_modseq  INTEGER,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, folder)
);

-- Received messages, as raw bytes, stored before anything interprets them.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    mailbox_id   INTEGER NOT NULL REFERENCES mailboxes (id),
    folder       TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    message_id   TEXT,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    raw          BLOB NOT NULL,
    received_ms  INTEGER NOT NULL,
    UNIQUE (mailbox_id, folder, uidvalidity, uid)
);
CREATE UNIQUE INDEX messages_by_message_id ON messages (mailbox_id, message_id)
    WHERE message_id IS NOT NULL;

CREATE TABLE attachments (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    ordinal     INTEGER NOT NULL,
    filename    TEXT,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    content     BLOB NOT NULL,
    UNIQUE (message_id, ordinal)
);

CREATE TABLE patients (
    id                INTEGER PRIMARY KEY,
    matricule         TEXT UNIQUE,
    ins_oid           TEXT,
    birth_name        TEXT,
    birth_name_key    TEXT,
    first_given_name  TEXT,
    given_names       TEXT,
    birth_date        TEXT,
    birth_year        INTEGER,
    sex               TEXT,
    birthplace_code   TEXT,
    identity_status   TEXT NOT NULL CHECK (identity_status IN ('PROV', 'RECUP', 'VALI', 'QUAL')),
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX patients_by_name ON patients (birth_name_key);
CREATE INDEX patients_by_birth_year ON patients (birth_year);

-- Identifiers of the patient in the host software (IPP…), one per system.
CREATE TABLE patient_local_ids (
    patient_id  INTEGER NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    system      TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (system, value)
);
CREATE INDEX patient_local_ids_by_patient ON patient_local_ids (patient_id);

CREATE TABLE documents (
    id          INTEGER PRIMARY KEY,
    set_id      TEXT NOT NULL UNIQUE,
    patient_id  INTEGER REFERENCES patients (id),
    doc_type    TEXT,
    title       TEXT,
    deleted_ms  INTEGER,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE INDEX documents_by_patient ON documents (patient_id);

-- Every version ever received; `state` says which one is current.
CREATE TABLE document_versions (
    id              INTEGER PRIMARY KEY,
    document_id     INTEGER NOT NULL REFERENCES documents (id),
    version_no      INTEGER NOT NULL,
    version_id      TEXT NOT NULL,
    source_version  INTEGER,
    change          TEXT NOT NULL CHECK (change IN ('added', 'replacement')),
    state           TEXT NOT NULL CHECK (state IN ('current', 'replaced', 'deleted', 'pending_deletion')),
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    sha1            TEXT NOT NULL,
    content         BLOB NOT NULL,
    message_id      INTEGER REFERENCES messages (id),
    created_ms      INTEGER NOT NULL,
    UNIQUE (document_id, version_no),
    UNIQUE (document_id, version_id)
);
CREATE INDEX document_versions_by_sha256 ON document_versions (sha256);
-- XDM METADATA.XML carries SHA-1: "already integrated" is checked with it too.
CREATE INDEX document_versions_by_sha1 ON document_versions (sha1);
CREATE INDEX document_versions_by_version_id ON document_versions (version_id);

-- What a person sees in the worklist: one item per message, or per document inside it.
CREATE TABLE worklist (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES messages (id),
    item_key      TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('received', 'integrated', 'proposed', 'replaced', 'deleted', 'duplicate', 'deletion_to_confirm', 'failed')),
    failure_code  INTEGER CHECK (failure_code BETWEEN 900 AND 906),
    reason        TEXT,
    patient_id    INTEGER REFERENCES patients (id),
    document_id   INTEGER REFERENCES documents (id),
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    UNIQUE (message_id, item_key)
);
CREATE INDEX worklist_by_state ON worklist (state, updated_ms);

CREATE TABLE worklist_candidates (
    item_id     INTEGER NOT NULL REFERENCES worklist (id) ON DELETE CASCADE,
    rank        INTEGER NOT NULL,
    patient_id  INTEGER NOT NULL REFERENCES patients (id),
    score       REAL NOT NULL,
    PRIMARY KEY (item_id, rank)
);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id),
    message_id       TEXT NOT NULL,
    recipients       TEXT NOT NULL,
    raw              BLOB NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_ms  INTEGER NOT NULL,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    sent_ms          INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms, id);

CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    patient_id   INTEGER REFERENCES patients (id),
    document_id  INTEGER REFERENCES documents (id),
    message_id   INTEGER REFERENCES messages (id),
    text         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    read_ms      INTEGER
);
CREATE INDEX notifications_unread ON notifications (read_ms, id);

-- The trace journal: append-only, each entry carries the hash of the previous one.
-- `seq` is assigned by the store (never reused), so a gap shows a deletion.
CREATE TABLE traces (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
    at         TEXT NOT NULL,
    author     TEXT NOT NULL,
    action     TEXT NOT NULL,
    mailbox    TEXT,
    patient    TEXT,
    document   TEXT,
    message    TEXT,
    request    TEXT,
    response   TEXT,
    outcome    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX traces_by_time ON traces (at_ms);
CREATE INDEX traces_by_mailbox ON traces (mailbox);
CREATE INDEX traces_by_patient ON traces (patient);
CREATE INDEX traces_by_document ON traces (document);

-- The chain's two ends: where it starts after pruning (anchor) and its last entry
-- (head). Appends lock this row, so two writers can never fork the chain.
CREATE TABLE trace_head (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    anchor_seq   INTEGER NOT NULL,
    anchor_hash  TEXT NOT NULL,
    last_seq     INTEGER NOT NULL,
    last_hash    TEXT NOT NULL
);
INSERT INTO trace_head (id, anchor_seq, anchor_hash, last_seq, last_hash) VALUES
    (1, 1, '0000000000000000000000000000000000000000000000000000000000000000',
     0, '0000000000000000000000000000000000000000000000000000000000000000');
