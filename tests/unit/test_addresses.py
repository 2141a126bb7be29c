"""Address syntax (agent/addresses.py): the canonical form kept, the API's code on refusal."""

from __future__ import annotations

import pytest

from agent import addresses
from agent.addresses import AddressError


@pytest.mark.parametrize(("given", "canonical"), [
    ("+351912345678", "+351912345678"),
    ("+351 912 345 678", "+351912345678"),
    ("+1 (415) 555-2671", "+14155552671"),
])
def test_phone_numbers_are_kept_in_e164(given: str, canonical: str) -> None:
    assert addresses.phone(given) == canonical


@pytest.mark.parametrize("bad", ["912345678", "+1555", "+15555550100", "phone", "", "+" + "9" * 30,
                                 "whatsapp:+351912345678", "tel:+351912345678",
                                 "call +351912345678", "+351912345678 x"])
def test_a_phone_number_that_cannot_be_dialled_is_invalid_phone(bad: str) -> None:
    with pytest.raises(AddressError) as info:
        addresses.phone(bad)
    assert info.value.code == "invalid_phone"


def test_email_domains_are_normalized_and_no_dns_is_asked() -> None:
    # No MX record exists for this domain: a deliverability check would refuse it.
    assert addresses.email("Ana@No-MX.Example.COM") == "Ana@no-mx.example.com"


@pytest.mark.parametrize("bad", ["ana", "ana@", "@example.com", "ana@@example.com",
                                 "ana@example..com", "a b@example.com"])
def test_malformed_email_is_invalid_email(bad: str) -> None:
    with pytest.raises(AddressError) as info:
        addresses.email(bad)
    assert info.value.code == "invalid_email"


def test_fcm_tokens_by_shape() -> None:
    token = "dQw4w9WgXcQ:APA91bH-" + "x" * 140
    assert addresses.fcm_token("fcm:" + token) == "fcm:" + token
    for bad in ("fcm:", "fcm:has space", "fcm:" + "a" * 4097, "fcm:tok/en"):
        with pytest.raises(AddressError) as info:
            addresses.fcm_token(bad)
        assert info.value.code == "invalid_recipient"


@pytest.mark.parametrize("ok", ["123456789", "-1001234567890", "@alerts_bot_chan"])
def test_telegram_chat_ids_by_shape(ok: str) -> None:
    assert addresses.telegram_chat(ok) == ok


@pytest.mark.parametrize("bad", ["0123", "12a", "@abc", "-", "1" * 17])
def test_telegram_non_chat_ids_are_refused(bad: str) -> None:
    with pytest.raises(AddressError):
        addresses.telegram_chat(bad)


def test_the_refusal_echoes_a_bounded_single_line() -> None:
    with pytest.raises(AddressError) as info:
        addresses.email("x\n" * 200)
    assert "\n" not in info.value.message and len(info.value.message) < 400
