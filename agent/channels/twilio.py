"""Twilio, shared by the ``sms`` and ``whatsapp`` channels: settings, the Messages API call,
the error table, status-callback signatures and what a status callback says.

Send: form-encoded ``POST {api_url}/2010-04-01/Accounts/{sid}/Messages.json`` with HTTP basic
auth (account sid, auth token), through the shared ``http.call``. Twilio answers ``201`` with the
message resource; its ``sid`` (``SM``/``MM`` + 32 hex) is the provider ref and the receipt id: the
notification is ``sent`` until a status callback (``StatusCallback`` = ``{public_url}/hooks/
twilio/status``) says ``delivered`` or ``failed``.

Errors are ``{"code", "message", "more_info", "status"}``::

    429, or code 20429            retryable, rate_limited, Retry-After honoured when given
    5xx                           retryable, provider_unavailable
    401, or code 20003            permanent, provider_rejected, scope channel (pauses it)
    21211 invalid 'To', 21612     permanent, invalid_recipient, scope recipient
      cannot route, 21614 not a
      mobile, 21408 region off
    21610 unsubscribed (STOP)     permanent, provider_rejected, scope recipient
    63016 outside the WhatsApp    permanent, provider_rejected: configure ``content_sid``
      24-hour window
    other 4xx                     permanent, provider_rejected (this message)

Signatures (``X-Twilio-Signature``, docs "Webhooks security"): base64 of HMAC-SHA1, keyed with
the auth token, over the full URL Twilio requested followed by every POST parameter, sorted by
name, as name + value. The URL is tried as given, without its port, and with the scheme's
default port added, as twilio-python's ``RequestValidator`` does (Twilio's own signing is
inconsistent about the port).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from pydantic import Field, SecretStr

from agent import addresses
from agent.channels import http
from agent.channels.base import (
    BaseUrl,
    ChannelConfigError,
    ChannelSettings,
    DeliveryError,
    DeliveryResult,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    Rate,
    RetryableDeliveryError,
    parse_retry_after,
)
from agent.domain import FailureReason, NotificationFailureClass

API_URL = "https://api.twilio.com"
STATUS_PATH = "/hooks/twilio/status"
# Incoming messages (the number's "A message comes in" webhook): "ACK <code>" acknowledges.
INBOUND_PATH = "/hooks/twilio/inbound"
SIGNATURE_HEADER = "X-Twilio-Signature"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
# A short code, or an alphanumeric sender id (1-11 letters, digits and spaces, one letter at
# least): what Twilio takes as ``From`` besides an E.164 number.
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_ALPHA_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")

RATE_LIMITED = 20429
AUTHENTICATE = 20003
OUTSIDE_WINDOW = 63016
# Refusals about the recipient's number (invalid, not routable, not a mobile, region disabled).
BAD_NUMBER = {21211: "invalid 'To' number", 21612: "cannot route to this number",
              21614: "'To' is not a mobile number", 21408: "sending to this region is off"}
UNSUBSCRIBED = 21610
WINDOW_HINT = ("WhatsApp accepts free text only within 24 hours of the recipient's last "
               "message: configure a pre-approved template with content_sid (per rule-file "
               "template or route target, or in the API metadata)")


class TwilioSettings(ChannelSettings):
    """``channels.twilio`` (the ``sms`` and ``whatsapp`` channels)."""

    enabled: bool = False
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    # The SMS sender: an E.164 number, a short code or an alphanumeric sender id; or a
    # Messaging Service (used when both are set).
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_url: BaseUrl = API_URL
    # The WhatsApp sender's number (E.164, with or without "whatsapp:"); unset: no whatsapp.
    whatsapp_from: str | None = None
    # SMS segment budget: a longer text is truncated with a marker and the link.
    max_segments: int = Field(default=4, ge=1, le=10)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Twilio's per-sender throughput: 1 message a second for a long code (toll-free 3, short
    # code 100, a Messaging Service the sum of its numbers); raise it to what yours has.
    rate_per_second: float = Field(default=1.0, gt=0)
    # A WhatsApp sender's default throughput (Twilio: 80 messages a second).
    whatsapp_rate_per_second: float = Field(default=80.0, gt=0)
    # Ages (seconds after sending) at which a message still ``sent`` is looked up through the
    # API, for a status callback that never came (the agent was down, no public_url); empty:
    # never. After the last, a message whose carrier never reported stays ``sent``.
    status_poll_after_seconds: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [600.0, 3600.0, 21600.0, 86400.0], max_length=10)


Secret = Callable[[SecretStr | None, Path | None, str], str | None]


# One phone should not get a storm faster than it can be read (the sender's bucket comes first).
RECIPIENT_RATE_PER_SECOND = 1.0
RECIPIENT_BURST = 5.0


def recipient_rate(key: str) -> Rate:
    """The bucket of one recipient (``sms:+E164``, ``whatsapp:+E164``)."""
    return Rate(key, RECIPIENT_RATE_PER_SECOND, RECIPIENT_BURST)


class TwilioMessaging:
    """What the sms and whatsapp channels share: the account (its calls and its signature on
    status callbacks), the sender's throughput bucket, then each recipient's own."""

    name: str
    local = False
    sender_burst: float

    def __init__(self, account: TwilioAccount, sender_key: str,
                 rate_per_second: float) -> None:
        self._account = account
        self._sender_rate = Rate(sender_key, rate_per_second, self.sender_burst)

    def destination_key(self, to: str) -> str:
        return f"{self.name}:{to}"

    def rates(self, to: str) -> Sequence[Rate]:
        """The sender's throughput, then the recipient's own bucket."""
        return (self._sender_rate, recipient_rate(f"{self.name}:{to}"))

    def receipt_signature_ok(self, url: str, params: Sequence[tuple[str, str]],
                             given: str | None) -> bool:
        """Whether a status callback to ``url`` is signed by this account."""
        return self._account.signature_ok(url, params, given)

    async def fetch_receipt(self, receipt_id: str) -> Receipt | None:
        """The message's status as Twilio has it now (for a callback that never came); None
        when Twilio does not know the message. Raises DeliveryError when it cannot say."""
        return await self._account.fetch_receipt(receipt_id)


def compose(message: Message) -> str:
    """The text a phone shows: the subject first unless the text already starts with it (the
    rule-file default text does); never empty (Twilio refuses an empty body)."""
    text = message.text.strip()
    subject = " ".join((message.subject or "").split())
    if subject and not text.startswith(subject):
        text = f"{subject}\n{text}" if text else subject
    return text or f"({message.severity})"


def with_ack_link(message: Message) -> str:
    """``compose``, and the acknowledge link last when there is one (a text cut to its budget
    ends with the link instead, so the link always arrives)."""
    text = compose(message)
    if not message.ack_url:
        return text
    reply = f" or reply ACK {message.ack_code}" if message.ack_code else ""
    return f"{text}\nAck: {message.ack_url}{reply}"


# -- signatures ----------------------------------------------------------------------------


def signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` of a request to ``url`` with these POST parameters: each name
    once, sorted, its distinct values sorted (twilio-python's ``compute_signature``)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values)
                           for value in sorted(values[name]))
    mac = hmac.new(token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def url_variants(url: str) -> list[str]:
    """``url`` as given, and without its port or with the scheme's default port added."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is not None:
        other = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
    else:
        other = parts._replace(netloc=f"{parts.netloc}:{443 if parts.scheme == 'https' else 80}")
    return [url, urlunsplit(other)]


def signature_valid(token: str, url: str, params: Iterable[tuple[str, str]],
                    given: str | None) -> bool:
    """Whether ``given`` signs this request (constant-time, every URL variant compared)."""
    if not given:
        return False
    params = list(params)
    expected = given.strip().encode("utf-8", "surrogateescape")
    ok = False
    for variant in url_variants(url):
        ok |= hmac.compare_digest(signature(token, variant, params).encode(), expected)
    return ok


# -- status callbacks ----------------------------------------------------------------------

# Twilio's message statuses: what a callback moves the notification to. The others (queued,
# sending, sent, accepted, scheduled, ...) change nothing.
DELIVERED_STATUSES = frozenset({"delivered"})
READ_STATUSES = frozenset({"read"})  # WhatsApp: read implies delivered
FAILED_STATUSES = frozenset({"failed", "undelivered"})
# Callback error codes about the recipient (unknown, unreachable, landline, opted out, not on
# WhatsApp): the message will not get through, whatever is retried.
RECIPIENT_ERRORS = {
    30003: "unreachable destination handset", 30005: "unknown destination handset",
    30006: "landline or unreachable carrier", 30004: "message blocked by the recipient",
    21610: "the recipient has unsubscribed (STOP)", 63003: "the number is not on WhatsApp",
    63024: "invalid WhatsApp recipient", **BAD_NUMBER,
}
# Of those, the ones saying the address reaches nobody (invalid_recipient).
NO_SUCH_RECIPIENT = frozenset({*BAD_NUMBER, 30005, 63003, 63024})
# Refusals of the content or the sender: permanent too (a re-drive fails alike until fixed).
CONTENT_ERRORS = {
    OUTSIDE_WINDOW: WINDOW_HINT, 30007: "filtered by the carrier",
    30034: "the sender is not A2P 10DLC registered", 63032: "WhatsApp template refused",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    """What one status callback says about message ``sid``: ``outcome`` is ``delivered``,
    ``read``, ``failed`` or None (an intermediate status)."""

    sid: str
    status: str
    outcome: str | None
    reason: FailureReason | None = None
    details: str | None = None
    failure_class: NotificationFailureClass | None = None


def receipt_of(params: Mapping[str, str]) -> Receipt | None:
    """The receipt in a status callback's parameters; None when it names no message."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not MESSAGE_SID.fullmatch(sid):
        return None
    if status in DELIVERED_STATUSES:
        return Receipt(sid, status, "delivered")
    if status in READ_STATUSES:
        return Receipt(sid, status, "read")
    if status not in FAILED_STATUSES:
        return Receipt(sid, status, None)
    code_text = (params.get("ErrorCode") or "").strip()
    code = int(code_text) if code_text.isdigit() else None
    if code in RECIPIENT_ERRORS:
        reason = (FailureReason.INVALID_RECIPIENT if code in NO_SUCH_RECIPIENT
                  else FailureReason.PROVIDER_REJECTED)
        return Receipt(sid, status, "failed", reason,
                       f"Twilio error {code} ({status}): {RECIPIENT_ERRORS[code]}",
                       NotificationFailureClass.PERMANENT)
    if code in CONTENT_ERRORS:
        return Receipt(sid, status, "failed", FailureReason.PROVIDER_REJECTED,
                       f"Twilio error {code} ({status}): {CONTENT_ERRORS[code]}",
                       NotificationFailureClass.PERMANENT)
    # Carrier trouble, queue overflow, an unknown error: a re-drive later may get through.
    what = f"Twilio error {code}" if code is not None else "no error code"
    return Receipt(sid, status, "failed", FailureReason.PROVIDER_REJECTED,
                   f"{what} ({status}): see https://www.twilio.com/docs/api/errors",
                   NotificationFailureClass.TEMPORARY)


# -- the account: the Messages API call ----------------------------------------------------


def classify(reply: http.HttpReply, redact: http.Redactor) -> DeliveryError | None:
    """The delivery error for a Twilio refusal that the shared status table would get wrong
    (the error codes of the module docstring); None to let the table decide."""
    body = reply.json()
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    details = redact(f"Twilio error {code}: {message if isinstance(message, str) else ''}")[:300]
    status = reply.status
    if code == RATE_LIMITED:
        return RetryableDeliveryError(FailureReason.RATE_LIMITED, details,
                                      parse_retry_after(reply.headers.get("Retry-After")),
                                      http_status=status)
    if code in BAD_NUMBER:
        return PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, details,
                                      http_status=status, scope=ErrorScope.RECIPIENT)
    if code == UNSUBSCRIBED:
        return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED,
                                      details + " (the recipient replied STOP)",
                                      http_status=status, scope=ErrorScope.RECIPIENT)
    if code == OUTSIDE_WINDOW:
        return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED,
                                      f"{details[:120]}: {WINDOW_HINT}", http_status=status)
    if code == AUTHENTICATE:
        return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details,
                                      http_status=status, scope=ErrorScope.CHANNEL)
    return None


class TwilioAccount:
    """One Twilio account: sends Messages API requests and checks callback signatures."""

    def __init__(self, account_sid: str, auth_token: str, api_url: str, timeout_seconds: float,
                 session: Callable[[], aiohttp.ClientSession],
                 public_url: str | None = None, first_check: float | None = None) -> None:
        self.sid = account_sid
        self._first_check = first_check  # the first status_poll_after_seconds
        self._token = auth_token
        self._url = f"{api_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._message_url = f"{api_url}/2010-04-01/Accounts/{account_sid}/Messages/{{}}.json"
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {credentials}",
                         "Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"}
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._redact = http.Redactor([auth_token, credentials])
        # Where Twilio posts the message's status changes (None: no receipts asked for).
        self.status_callback = (public_url.rstrip("/") + STATUS_PATH) if public_url else None

    def signature_ok(self, url: str, params: Iterable[tuple[str, str]],
                     given: str | None) -> bool:
        """Whether ``given`` is this account's signature of a request to ``url``."""
        return signature_valid(self._token, url, params, given)

    def _hook(self, reply: http.HttpReply) -> None:
        if 200 <= reply.status < 300:
            body = reply.json()
            sid = body.get("sid") if isinstance(body, dict) else None
            if not isinstance(sid, str) or not MESSAGE_SID.fullmatch(sid):
                raise RetryableDeliveryError(FailureReason.NETWORK_ERROR,
                                             "malformed answer from Twilio: no message sid",
                                             http_status=reply.status)
            return
        err = classify(reply, self._redact)
        if err is not None:
            raise err

    async def create_message(self, form: Mapping[str, str]) -> DeliveryResult:
        """POST one message; the result names its sid (provider ref and receipt id)."""
        data = dict(form)
        if self.status_callback is not None:
            data["StatusCallback"] = self.status_callback
        reply = await http.call(self._session(), "POST", self._url,
                                data=urlencode(data).encode(), headers=self._headers,
                                timeout=self._timeout, redact=self._redact,
                                body_hook=self._hook, auth_scope=ErrorScope.CHANNEL)
        body: dict[str, Any] = reply.json()
        sid = str(body["sid"])
        ref: dict[str, Any] = {"sid": sid, "to": data.get("To")}
        if isinstance(body.get("num_segments"), str | int):
            ref["segments"] = body["num_segments"]
        return DeliveryResult(provider_ref=ref, http_status=reply.status, receipt_id=sid,
                              receipt_check_after=self._first_check)


    async def fetch_receipt(self, sid: str) -> Receipt | None:
        """GET the message resource: its status (and error code) as a receipt; None for a sid
        Twilio does not know (``404``). Raises DeliveryError when Twilio cannot be asked."""
        if not MESSAGE_SID.fullmatch(sid):
            return None
        try:
            reply = await http.call(self._session(), "GET", self._message_url.format(sid),
                                    headers=self._headers, timeout=self._timeout,
                                    redact=self._redact, body_hook=self._hook,
                                    auth_scope=ErrorScope.CHANNEL)
        except PermanentDeliveryError as exc:
            if exc.http_status == 404:
                return None
            raise
        body = reply.json()
        code = body.get("error_code")
        params = {"MessageSid": str(body.get("sid")), "MessageStatus": str(body.get("status"))}
        if isinstance(code, int | str) and str(code).isdigit():
            params["ErrorCode"] = str(code)
        return receipt_of(params)


@dataclass(frozen=True, slots=True)
class Sender:
    """Who SMS come from: the form fields (``MessagingServiceSid`` or ``From``) and the key of
    the sender's rate bucket."""

    form: Mapping[str, str]
    key: str


def account_from(cfg: TwilioSettings, secret: Secret,
                 session: Callable[[], aiohttp.ClientSession],
                 public_url: str | None) -> TwilioAccount:
    """The account of ``channels.twilio``; raises ChannelConfigError naming the setting."""
    sid = (cfg.account_sid or "").strip()
    if not sid:
        raise ChannelConfigError("enabled without an account: set channels.twilio.account_sid")
    if not ACCOUNT_SID.fullmatch(sid):
        raise ChannelConfigError("channels.twilio.account_sid must be 'AC' and 32 hex digits")
    token = secret(cfg.auth_token, cfg.auth_token_file, "channels.twilio.auth_token")
    if not token or not token.strip():
        raise ChannelConfigError("enabled without an auth token: set channels.twilio.auth_token "
                                 "or channels.twilio.auth_token_file")
    return TwilioAccount(sid, token.strip(), cfg.api_url, cfg.timeout_seconds, session,
                         public_url, min(cfg.status_poll_after_seconds, default=None))


def sms_sender(cfg: TwilioSettings) -> Sender:
    """The SMS sender of ``channels.twilio``; raises ChannelConfigError naming the setting."""
    service = (cfg.messaging_service_sid or "").strip()
    if service:
        if not SERVICE_SID.fullmatch(service):
            raise ChannelConfigError("channels.twilio.messaging_service_sid must be 'MG' and "
                                     "32 hex digits")
        return Sender({"MessagingServiceSid": service}, f"twilio:{service}")
    sender = (cfg.from_number or "").strip()
    if not sender:
        raise ChannelConfigError("enabled without a sender: set channels.twilio.from_number or "
                                 "channels.twilio.messaging_service_sid")
    if sender.startswith("+"):
        try:
            sender = addresses.phone(sender)
        except addresses.AddressError as exc:
            raise ChannelConfigError(f"channels.twilio.from_number: {exc.message}") from None
    elif not (_SHORT_CODE.fullmatch(sender) or _ALPHA_SENDER.fullmatch(sender)):
        raise ChannelConfigError("channels.twilio.from_number must be an E.164 number, a "
                                 "short code or an alphanumeric sender id")
    return Sender({"From": sender}, f"twilio:{sender}")


def whatsapp_number(value: str) -> str:
    """``+E164`` of a WhatsApp address given as ``+E164`` or ``whatsapp:+E164``; raises
    AddressError ``invalid_phone``."""
    text = value.strip()
    return addresses.phone(text[len("whatsapp:"):] if text.startswith("whatsapp:") else text)
