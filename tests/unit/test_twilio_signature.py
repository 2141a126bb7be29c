"""X-Twilio-Signature against Twilio's published vectors.

- Twilio's docs, "Webhooks security" (https://www.twilio.com/docs/usage/security#validating-
  requests): auth token ``12345``, URL ``https://mycompany.com/myapp.php?foo=1&bar=2``, params
  CallSid/Caller/Digits/From/To with Caller and From ``+12349013030``:
  ``0/KCTR6DLpKmkAf8muzZqo1nDgQ=``.
- twilio-python's suite (tests/unit/test_request_validator.py at 306691e): the same URL and
  token with Caller and From ``+14158675309`` (``RSOYDt4T1cUTdK1PDd93/VVr8B8=``), the URL with
  port 443 added (``kvajT1Ptam85bY51eRf/AJRuM3w=``), http with port 80 added
  (``0ZXoZLH/DfblKGATFgpif+LLRf4=``), http with port 1234 (``Zmvh+3yNM1Phv2jhDCwEM3q5ebU=``),
  and repeated parameters sorted and deduplicated (``IK+Dwps556ElfBT0I3Rgjkr1wJU=``).
"""

from __future__ import annotations

import pytest

from agent.channels.twilio import signature, signature_valid, url_variants

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"),
               ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212")]
SUITE_PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Digits", "1234"),
                ("From", "+14158675309"), ("To", "+18005551212"), ("Caller", "+14158675309")]


def test_the_documented_vector() -> None:
    assert signature(TOKEN, URL, DOCS_PARAMS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature_valid(TOKEN, URL, DOCS_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_the_twilio_python_vector_in_any_parameter_order() -> None:
    assert signature(TOKEN, URL, SUITE_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature(TOKEN, URL, list(reversed(SUITE_PARAMS))) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_repeated_parameters_are_sorted_and_deduplicated() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
              ("Digits", "1234"), ("Digits", "1234")]
    assert signature(TOKEN, URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(("url", "given"), [
    # Signed with the default port added, requested without it (both schemes).
    (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
    (URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    # Signed without a port, requested with one (it is taken off).
    (URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    # Signed with the port it was requested on.
    (URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
])
def test_the_url_with_and_without_its_port(url: str, given: str) -> None:
    assert signature_valid(TOKEN, url, SUITE_PARAMS, given)


def test_url_variants() -> None:
    assert url_variants("https://a.example/x?y=1") == ["https://a.example/x?y=1",
                                                        "https://a.example:443/x?y=1"]
    assert url_variants("http://a.example:8080/x") == ["http://a.example:8080/x",
                                                       "http://a.example/x"]


@pytest.mark.parametrize("change", ["param", "token", "url", "missing", "blank", "truncated"])
def test_anything_else_is_refused(change: str) -> None:
    params, token, url, given = DOCS_PARAMS, TOKEN, URL, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    if change == "param":
        params = [*DOCS_PARAMS[:2], ("Digits", "9999"), *DOCS_PARAMS[3:]]
    elif change == "token":
        token = "54321"
    elif change == "url":
        url = URL.replace("foo=1", "foo=2")
    elif change == "missing":
        given = None  # type: ignore[assignment]
    elif change == "blank":
        given = ""
    else:
        given = given[:-1]
    assert not signature_valid(token, url, params, given)
