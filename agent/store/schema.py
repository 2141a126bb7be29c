"""Versioned schema migrations, applied in order; ``PRAGMA user_version`` records the last one.

Never edit a released migration: append a new one.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: the spine. Queued notification rows *are* the outbox (DESIGN principle 3): the partial
    # index over queued rows keeps the dispatcher's claim query independent of history size.
    """
    CREATE TABLE notifications (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT NOT NULL UNIQUE,
        status          TEXT NOT NULL,
        channel         TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        message         TEXT,
        subject         TEXT,
        template_id     TEXT,
        template_body   TEXT,
        severity        TEXT NOT NULL,
        priority        TEXT NOT NULL,
        metadata        TEXT NOT NULL,
        idempotency_key TEXT,
        simulated       INTEGER NOT NULL DEFAULT 0,
        api_key_id      TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        schedule_at     REAL,
        due_at          REAL NOT NULL,
        claimed_at      REAL,
        created_at      REAL NOT NULL,
        sent_at         REAL,
        delivered_at    REAL,
        read_at         REAL,
        failed_at       REAL,
        cancelled_at    REAL,
        acknowledged_at REAL,
        acknowledged_by TEXT,
        failure_reason  TEXT,
        failure_details TEXT,
        batch_id        TEXT
    );
    CREATE INDEX notifications_outbox ON notifications (due_at) WHERE status = 'queued';
    CREATE INDEX notifications_created ON notifications (created_at);
    CREATE INDEX notifications_channel_status ON notifications (channel, status);
    CREATE INDEX notifications_batch ON notifications (batch_id) WHERE batch_id IS NOT NULL;

    CREATE TABLE templates (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        name         TEXT NOT NULL UNIQUE,
        channel      TEXT NOT NULL,
        body         TEXT NOT NULL,
        variables    TEXT NOT NULL,
        description  TEXT,
        metadata     TEXT NOT NULL,
        usage_count  INTEGER NOT NULL DEFAULT 0,
        last_used_at REAL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL
    );

    CREATE TABLE idempotency_keys (
        api_key_id      TEXT NOT NULL,
        key             TEXT NOT NULL,
        request_hash    TEXT NOT NULL,
        resource_id     TEXT NOT NULL,
        created_at      REAL NOT NULL,
        PRIMARY KEY (api_key_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_created ON idempotency_keys (created_at);

    CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,
        mode        TEXT NOT NULL CHECK (mode IN ('live', 'test')),
        key_hash    TEXT NOT NULL UNIQUE,
        hint        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        revoked_at  REAL
    );

    CREATE TABLE inbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        notification_id TEXT NOT NULL UNIQUE,
        recipient       TEXT NOT NULL,
        title           TEXT,
        body            TEXT NOT NULL,
        severity        TEXT NOT NULL,
        metadata        TEXT NOT NULL,
        created_at      REAL NOT NULL,
        read_at         REAL
    );
    CREATE INDEX inbox_recipient ON inbox (recipient, seq);
    """,
)
