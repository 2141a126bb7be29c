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
    # 2: alerts (ingested or posted), their groups and the notifications they produced.
    # One active alert per (source, fingerprint); a re-fire after resolution is a new alert.
    """
    CREATE TABLE alerts (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        id               TEXT NOT NULL UNIQUE,
        source           TEXT NOT NULL,
        fingerprint      TEXT NOT NULL,
        status           TEXT NOT NULL,
        type             TEXT NOT NULL,
        monitor_id       TEXT,
        alertname        TEXT,
        message          TEXT,
        severity         TEXT NOT NULL,
        labels           TEXT NOT NULL,
        annotations      TEXT NOT NULL,
        extra            TEXT,
        generator_url    TEXT,
        starts_at        REAL,
        ends_at          REAL,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        resolved_at      REAL,
        last_received_at REAL NOT NULL,
        receive_count    INTEGER NOT NULL DEFAULT 1
    );
    CREATE UNIQUE INDEX alerts_active ON alerts (source, fingerprint) WHERE status = 'active';
    CREATE INDEX alerts_status ON alerts (status, seq);
    CREATE INDEX alerts_monitor ON alerts (monitor_id, seq);

    CREATE TABLE alert_groups (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        group_key     TEXT NOT NULL UNIQUE,
        route_id      TEXT NOT NULL,
        route         TEXT NOT NULL,
        labels        TEXT NOT NULL,
        pending       INTEGER NOT NULL DEFAULT 1,
        version       INTEGER NOT NULL DEFAULT 0,
        next_flush_at REAL NOT NULL,
        last_flush_at REAL,
        claimed_at    REAL,
        created_at    REAL NOT NULL
    );
    CREATE INDEX alert_groups_due ON alert_groups (next_flush_at);

    CREATE TABLE group_members (
        group_id  INTEGER NOT NULL,
        alert_seq INTEGER NOT NULL,
        status    TEXT NOT NULL,
        notified  TEXT,
        PRIMARY KEY (group_id, alert_seq)
    ) WITHOUT ROWID;
    CREATE INDEX group_members_alert ON group_members (alert_seq);

    CREATE TABLE alert_notifications (
        alert_seq       INTEGER NOT NULL,
        notification_id TEXT NOT NULL,
        PRIMARY KEY (alert_seq, notification_id)
    ) WITHOUT ROWID;
    """,
    # 3: list filters walk an index in page order instead of scanning and sorting.
    """
    DROP INDEX notifications_channel_status;
    CREATE INDEX notifications_status_seq ON notifications (status, seq);
    CREATE INDEX notifications_channel_seq ON notifications (channel, seq);
    CREATE INDEX notifications_channel_status_seq ON notifications (channel, status, seq);
    CREATE INDEX alerts_fingerprint ON alerts (source, fingerprint, seq);
    """,
    # 4: the mode (live | test) of the key that created an alert or an inbox item: test keys
    # see and touch only test-mode rows. A notification's mode is its ``simulated`` flag.
    """
    ALTER TABLE alerts ADD COLUMN mode TEXT NOT NULL DEFAULT 'live'
        CHECK (mode IN ('live', 'test'));
    ALTER TABLE inbox ADD COLUMN mode TEXT NOT NULL DEFAULT 'live'
        CHECK (mode IN ('live', 'test'));
    CREATE INDEX notifications_mode_seq ON notifications (simulated, seq);
    DROP INDEX inbox_recipient;
    CREATE INDEX inbox_recipient ON inbox (recipient, mode, seq);
    """,
    # 5: keys made by `alert-agent keys create` carry a name; `source` tells first-run keys
    # (every row so far), CLI keys, and revocation records of configured keys apart.
    """
    ALTER TABLE api_keys ADD COLUMN name TEXT;
    ALTER TABLE api_keys ADD COLUMN source TEXT NOT NULL DEFAULT 'first-run';
    """,
    # 6: every delivery attempt is a row (the notification keeps only its latest state), with
    # what the far side answered: a later edit reads the provider's message ref from here.
    """
    CREATE TABLE deliveries (
        notification_id TEXT NOT NULL,
        attempt         INTEGER NOT NULL,
        channel         TEXT NOT NULL,
        started_at      REAL NOT NULL,
        finished_at     REAL NOT NULL,
        outcome         TEXT NOT NULL
            CHECK (outcome IN ('delivered', 'retry', 'deferred', 'failed')),
        failure_reason  TEXT,
        failure_class   TEXT CHECK (failure_class IN ('retryable', 'permanent', 'technical')),
        failure_details TEXT,
        http_status     INTEGER,
        retry_after     REAL,
        provider_ref    TEXT
    );
    CREATE INDEX deliveries_notification ON deliveries (notification_id, attempt);
    """,
    # 7: a delivered message is found again by its group (thread key), channel and recipient, so
    # a later notification of the group can edit it (issue 12, edit on resolve).
    """
    ALTER TABLE deliveries ADD COLUMN thread_key TEXT;
    ALTER TABLE deliveries ADD COLUMN recipient TEXT;
    CREATE INDEX deliveries_thread ON deliveries (thread_key, channel, recipient)
        WHERE outcome = 'delivered' AND thread_key IS NOT NULL;
    """,
    # 8: retries that wait. ``attempts`` now counts attempts that reached an outcome (a deferral
    # gives its attempt back); ``abandoned`` counts claims that never did (a crash, a lost lease),
    # so a row that kills the process still fails after delivery.max_attempts claims;
    # ``deferrals`` spaces out waits the far side did not time. The claim walks queued rows by
    # priority, then due time; that index replaces the one by due time alone (the idle wait
    # takes the earliest of three priorities), so an insert still updates as many indexes.
    """
    ALTER TABLE notifications ADD COLUMN abandoned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notifications ADD COLUMN deferrals INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX notifications_claim ON notifications (priority, due_at) WHERE status = 'queued';
    DROP INDEX notifications_outbox;
    """,
    # 9: a member's severity (fixed when the alert is created) beside its state, so a flush
    # reads a storm's group from group_members alone instead of one alerts row per member.
    # NULL on rows from before: read from the alert then.
    """
    ALTER TABLE group_members ADD COLUMN severity TEXT;
    """,
    # 10: a new alert is inserted into one index keyed by its (random) fingerprint, not two:
    # alerts_active finds the active one; the history of a fingerprint is needed only for its
    # resolved rows (did the last one end after a late copy started?), so that index covers
    # them alone and a row joins it when it resolves. Queries name the status as a literal,
    # so the planner can match the partial indexes.
    """
    DROP INDEX alerts_fingerprint;
    CREATE INDEX alerts_ended ON alerts (source, fingerprint, seq) WHERE status = 'resolved';
    """,
    # 11: a group's later notification waits until the group's earlier one on the same channel
    # and recipient is delivered, so it can edit that message instead of posting a second one:
    # the queued notifications of an alert group by group, channel and recipient. Plain API
    # sends carry no group id and stay out of the index.
    """
    CREATE INDEX notifications_thread_queued ON notifications (
        json_extract(metadata, '$.group_id'), channel, recipient, seq)
        WHERE status = 'queued' AND json_extract(metadata, '$.group_id') IS NOT NULL;
    """,
    # 12: dead letters (issue 12). A failed notification's class (GOV.UK Notify's permanent,
    # temporary, technical); rows failed before are classed from their reason, details and last
    # attempt. A re-drive restarts the retry budget: the deadline from ``redriven_at``, the
    # attempt budget after ``redrive_attempts``. ``dead_letters`` counts failed rows per channel
    # (store/deadletters.py keeps it), so the gauge reads a few rows instead of counting.
    """
    ALTER TABLE notifications ADD COLUMN failure_class TEXT
        CHECK (failure_class IN ('permanent', 'temporary', 'technical'));
    ALTER TABLE notifications ADD COLUMN redriven_at REAL;
    ALTER TABLE notifications ADD COLUMN redrive_attempts INTEGER NOT NULL DEFAULT 0;
    UPDATE notifications SET failure_class = CASE
        WHEN failure_reason IN ('channel_not_configured', 'template_render_error')
          OR failure_details LIKE 'internal channel error:%'
          OR failure_details = 'claimed too often without an outcome' THEN 'technical'
        WHEN failure_details LIKE 'gave up after %' THEN 'temporary'
        ELSE CASE (SELECT d.failure_class FROM deliveries d
                   WHERE d.notification_id = notifications.id
                   ORDER BY d.attempt DESC, d.rowid DESC LIMIT 1)
            WHEN 'technical' THEN 'technical'
            WHEN 'retryable' THEN 'temporary'
            ELSE 'permanent' END
        END
    WHERE status = 'failed';
    CREATE TABLE dead_letters (
        channel TEXT PRIMARY KEY,
        count   INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO dead_letters (channel, count)
        SELECT channel, COUNT(*) FROM notifications WHERE status = 'failed' GROUP BY channel;
    """,
    # 13: the team directory (issue 13). A send to a team or member is a parent row, never
    # delivered itself (``fanout`` children; its due_at is past any real time), and one child row
    # per recipient address (``parent_id``), each with the directory member it reaches.
    """
    ALTER TABLE notifications ADD COLUMN parent_id TEXT;
    ALTER TABLE notifications ADD COLUMN member_id TEXT;
    ALTER TABLE notifications ADD COLUMN fanout INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX notifications_parent ON notifications (parent_id) WHERE parent_id IS NOT NULL;
    """,
    # 14: delivery receipts (issue 13). A channel whose provider reports the outcome later
    # (Twilio) leaves the notification ``sent`` with the provider's message id, and the status
    # callback finds it by that id. Only such rows carry one, so the partial index costs the
    # other channels nothing.
    """
    ALTER TABLE notifications ADD COLUMN provider_id TEXT;
    CREATE UNIQUE INDEX notifications_provider_id ON notifications (provider_id)
        WHERE provider_id IS NOT NULL;
    """,
    # 15: acknowledgment (issue 14). The first acknowledgment of an alert is kept with who gave
    # it and through what; a group member whose alert is acknowledged stops the group's repeats.
    """
    ALTER TABLE alerts ADD COLUMN acknowledged_at REAL;
    ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
    ALTER TABLE alerts ADD COLUMN acknowledged_via TEXT;
    ALTER TABLE group_members ADD COLUMN acknowledged INTEGER NOT NULL DEFAULT 0;
    """,
    # 16: escalation (issue 14). Each step of a route's escalation policy, for each run of it,
    # is a durable row due at a time: it survives restarts, is claimed when due, and an
    # acknowledgment or a resolve cancels it in the transaction that records them.
    """
    CREATE TABLE escalation_steps (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id     INTEGER NOT NULL,
        run          INTEGER NOT NULL,
        step         INTEGER NOT NULL,
        steps        INTEGER NOT NULL,
        until        TEXT NOT NULL CHECK (until IN ('acknowledged', 'resolved')),
        due_at       REAL NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('pending', 'fired', 'cancelled')),
        notification TEXT NOT NULL,
        targets      TEXT NOT NULL,
        created_at   REAL NOT NULL,
        fired_at     REAL,
        cancelled_at REAL,
        cancelled_by TEXT
    );
    CREATE INDEX escalation_steps_due ON escalation_steps (due_at) WHERE status = 'pending';
    CREATE INDEX escalation_steps_group ON escalation_steps (group_id, status);
    """,
    # 17: lost receipts. A ``sent`` row waiting for its provider's report carries when to look
    # it up through the provider's API if no callback came; only those rows are in the partial
    # index, so a round reads just what is due. Rows sent in the day before this version are
    # looked up once (older ones were asked about already, or are past the last default age).
    # And the notifications of an alert are found by the notification too (acknowledgments,
    # withdrawn pages, SMS replies).
    """
    ALTER TABLE notifications ADD COLUMN receipt_check_at REAL;
    UPDATE notifications SET receipt_check_at = sent_at + 600
        WHERE status = 'sent' AND provider_id IS NOT NULL
        AND sent_at > CAST(strftime('%s', 'now') AS REAL) - 86400;
    CREATE INDEX notifications_receipt_check ON notifications (receipt_check_at)
        WHERE receipt_check_at IS NOT NULL;
    CREATE INDEX alert_notifications_notification ON alert_notifications (notification_id);
    """,
)
