-- The outbox holds the messages the user composes as well as acknowledgements, with a
-- claim (`sending` + lease) so two processes never submit the same item at once, and
-- a unique Message-ID so the same acknowledgement is never queued twice. SQLite cannot
-- change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE outbox_new (
    id               INTEGER PRIMARY KEY,
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id),
    kind             TEXT NOT NULL CHECK (kind IN ('message', 'acknowledgement')),
    message_id       TEXT NOT NULL,
    subject          TEXT,
    recipients       TEXT NOT NULL,
    raw              BLOB NOT NULL,
    dsn              TEXT,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL,
    next_attempt_ms  INTEGER NOT NULL,
    lease_until_ms   INTEGER,
    last_error       TEXT,
    created_ms       INTEGER NOT NULL,
    sent_ms          INTEGER
);
-- Acknowledgements queued twice before this migration keep their row, under a
-- Message-ID marked as a duplicate, so the unique index can be built.
INSERT INTO outbox_new (id, mailbox_id, kind, message_id, subject, recipients, raw, dsn, state,
                        attempts, next_attempt_ms, lease_until_ms, last_error, created_ms, sent_ms)
SELECT o.id, o.mailbox_id, 'acknowledgement',
       CASE WHEN o.id = (SELECT MIN(d.id) FROM outbox d WHERE d.message_id = o.message_id)
            THEN o.message_id ELSE o.message_id || ' duplicate ' || o.id END,
       NULL, o.recipients, o.raw, NULL, o.state, o.attempts, o.next_attempt_ms, NULL,
       o.last_error, o.created_ms, o.sent_ms
FROM outbox o;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms, id);
CREATE UNIQUE INDEX outbox_by_message_id ON outbox (message_id);

-- What came back about a message we sent: one row per (report message, recipient).
-- `outbox_id` is NULL when the report matches nothing we sent (kept and shown).
CREATE TABLE delivery_reports (
    id                   INTEGER PRIMARY KEY,
    report_message_id    INTEGER NOT NULL REFERENCES messages (id),
    outbox_id            INTEGER REFERENCES outbox (id),
    kind                 TEXT NOT NULL CHECK (kind IN ('mdn', 'dsn')),
    original_message_id  TEXT,
    envelope_id          TEXT,
    recipient            TEXT NOT NULL,
    state                TEXT NOT NULL,
    status               TEXT,
    detail               TEXT,
    received_ms          INTEGER NOT NULL
);
CREATE UNIQUE INDEX delivery_reports_once ON delivery_reports (report_message_id, recipient);
CREATE INDEX delivery_reports_by_outbox ON delivery_reports (outbox_id);

-- Documents this software sent (UX.05.BIS): a replacement or deletion is only asked for
-- a version we sent.
CREATE TABLE sent_documents (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL REFERENCES outbox (id),
    document_id  TEXT NOT NULL,
    set_id       TEXT NOT NULL,
    version      INTEGER,
    action       TEXT NOT NULL CHECK (action IN ('new', 'replace', 'delete')),
    replaces     TEXT,
    patient_ins  TEXT,
    title        TEXT,
    recipients   TEXT NOT NULL,
    created_ms   INTEGER NOT NULL
);
CREATE UNIQUE INDEX sent_documents_once ON sent_documents (outbox_id, document_id);
CREATE INDEX sent_documents_by_document ON sent_documents (document_id);
CREATE INDEX sent_documents_by_set ON sent_documents (set_id);
