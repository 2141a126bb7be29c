"""Address syntax, one validator per kind of address: phone numbers, email addresses, FCM device
tokens, Telegram chat ids. Pure and shared: the API edge, the directory loader and the channels
all check an address the same way, and each returns the canonical form that is stored.

Syntax only: nothing here looks a name up in DNS or asks a provider. The error codes are the
API's (seed 003): ``invalid_phone``, ``invalid_email``, else ``invalid_recipient``.
"""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class AddressError(ValueError):
    """``to`` is not an address of this channel. ``code`` is the API error code."""

    def __init__(self, message: str, code: str = "invalid_recipient") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# A Telegram chat id: a private chat's user id, a group's negative id, -100… for supergroups and
# channels (at most 52 significant bits, so 16 digits is a safe bound), or a public @username.
TELEGRAM_CHAT_ID = re.compile(r"-?[1-9][0-9]{0,15}")
TELEGRAM_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}")
# An FCM registration token as FCM documents no grammar for it: the characters tokens are made
# of (base64url plus ':'), bounded.
FCM_TOKEN = re.compile(r"[A-Za-z0-9_:-]{1,4096}")
FCM_PREFIX = "fcm:"
_DIALLABLE = re.compile(r"\+[0-9 ().-]{1,40}")


def phone(value: str) -> str:
    """An E.164 phone number (``+`` and country code, as Twilio takes it), canonical; raises
    AddressError ``invalid_phone``. A number without its country code is refused: the agent
    has no home region to guess it from."""
    text = value.strip()
    try:
        # phonenumbers finds a number inside any text ("call +351 912..." parses): only digits
        # and the usual separators are a phone number here.
        parsed = phonenumbers.parse(text, None) if _DIALLABLE.fullmatch(text) else None
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise AddressError(f"'{_shown(value)}' is not a valid phone number: use E.164 with the "
                           "country code, e.g. '+351912345678'.", "invalid_phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def email(value: str) -> str:
    """An email address (syntax only, no DNS lookup), with its domain normalized; raises
    AddressError ``invalid_email``."""
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"'{_shown(value)}' is not a valid email address: {exc}",
                           "invalid_email") from None
    return str(checked.normalized)


def fcm_token(value: str) -> str:
    """``fcm:<device token>`` as given; raises AddressError when the token cannot be one."""
    token = value[len(FCM_PREFIX):] if value.startswith(FCM_PREFIX) else value
    if not FCM_TOKEN.fullmatch(token):
        raise AddressError("An FCM address is 'fcm:' and a device token of 1-4,096 letters, "
                           "digits, '_', ':' or '-'.")
    return FCM_PREFIX + token


def telegram_chat(value: str) -> str:
    """A Telegram chat id or @username as given; raises AddressError otherwise."""
    if TELEGRAM_CHAT_ID.fullmatch(value) or TELEGRAM_USERNAME.fullmatch(value):
        return value
    raise AddressError("For the telegram channel 'to' must be a chat id (an integer, "
                       "-100… for supergroups and channels) or @channelusername.")


def _shown(value: str) -> str:
    # Echoed in an error message: bounded, and one line.
    text = value if len(value) <= 64 else value[:61] + "..."
    return text.replace("\n", " ").replace("\r", " ")
