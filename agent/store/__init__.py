"""The store: the only place that knows SQL (SQLite's dialect, on its own connections).

Callers use the aggregate stores' async methods and never see a connection or a row.
"""

from __future__ import annotations

from pathlib import Path

from agent.observability import Metrics
from agent.store.acks import AckStore
from agent.store.alerts import AlertStore
from agent.store.db import Database, StoreError
from agent.store.escalations import EscalationStore
from agent.store.idempotency import IdempotencyConflict, IdempotencyStore
from agent.store.inbox import InboxStore
from agent.store.keys import KeyStore
from agent.store.notifications import NotificationStore
from agent.store.receipts import ReceiptStore
from agent.store.templates import TemplateNameTaken, TemplateStore


class Store:
    """Every aggregate store over one database."""

    def __init__(
        self,
        path: Path,
        metrics: Metrics,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        idempotency_ttl: float = 86400.0,
    ) -> None:
        self.db = Database(path, metrics, synchronous, busy_timeout_ms)
        self.notifications = NotificationStore(self.db, idempotency_ttl)
        self.templates = TemplateStore(self.db)
        self.idempotency = IdempotencyStore(self.db)
        self.keys = KeyStore(self.db)
        self.inbox = InboxStore(self.db)
        self.alerts = AlertStore(self.db)
        self.deliveries = self.notifications.deliveries
        self.receipts = ReceiptStore(self.db)
        self.acks = AckStore(self.db)
        self.escalations = EscalationStore(self.db)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()


__all__ = ["Store", "StoreError", "IdempotencyConflict", "TemplateNameTaken"]
