"""The ``push`` channel with two providers: ``fcm:<device token>`` goes to Firebase Cloud
Messaging (channels/fcm.py), any other address is an ntfy topic (channels/push.py).

Built when ``channels.fcm.enabled`` (with or without ntfy); ntfy alone builds the ntfy channel
itself, as before. Every call is handed to the provider the address names. The limits hold for
both providers: a later message of a group replaces the earlier one (ntfy by sequence id, FCM by
notification tag), so the dispatcher hands either its earlier ref; FCM cannot delete, so the
channel does not claim it (ntfy still honours ``retract`` on its own addresses).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent import addresses
from agent.channels.base import (
    AddressError,
    DeliveryResult,
    Limits,
    Message,
    PermanentDeliveryError,
    Rate,
)
from agent.channels.fcm import FcmSender
from agent.channels.push import PushChannel
from agent.domain import FailureReason


class PushRouter:
    name = "push"
    local = False
    limits = Limits(max_subject_chars=256, can_edit=True, can_delete=False,
                    overflow="truncate")

    def __init__(self, ntfy: PushChannel | None, fcm: FcmSender) -> None:
        self.ntfy = ntfy
        self.fcm = fcm

    def validate_address(self, to: str) -> str:
        """``fcm:<device token>``, or an ntfy topic when ntfy is configured."""
        if to.startswith(addresses.FCM_PREFIX):
            return self.fcm.validate_address(to)
        if self.ntfy is None:
            raise AddressError("For the push channel 'to' must be 'fcm:<device token>': ntfy "
                               "topics need channels.push (ntfy) enabled, and it is not.")
        return self.ntfy.validate_address(to)

    # A refused FCM key pauses FCM deliveries only, a refused ntfy token ntfy's.
    pause_keys = ("push", "push/fcm")

    def pause_key(self, to: str) -> str:
        if to.startswith(addresses.FCM_PREFIX) or self.ntfy is None:
            return "push/fcm"
        return "push"

    def destination_key(self, to: str) -> str:
        if to.startswith(addresses.FCM_PREFIX) or self.ntfy is None:
            return self.fcm.destination_key(to)
        return self.ntfy.destination_key(to)

    def rates(self, to: str) -> Sequence[Rate]:
        if to.startswith(addresses.FCM_PREFIX) or self.ntfy is None:
            return self.fcm.rates(to)
        return self.ntfy.rates(to)

    async def send(self, message: Message) -> DeliveryResult:
        if message.to.startswith(addresses.FCM_PREFIX):
            return await self.fcm.send(message)
        if self.ntfy is None:  # queued while ntfy was configured
            raise PermanentDeliveryError(FailureReason.CHANNEL_NOT_CONFIGURED,
                                         "ntfy (channels.push) is not enabled")
        return await self.ntfy.send(message)

    async def close(self) -> None:
        try:
            await self.fcm.close()
        finally:
            if self.ntfy is not None:
                await self.ntfy.close()
