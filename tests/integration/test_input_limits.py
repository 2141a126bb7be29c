"""Input caps (issue 10, item 3): alerts per payload, labels, label and annotation sizes,
metadata size and JSON depth, each refused in the seed's envelope naming its setting; hook
credentials checked from the headers before the body is read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agent.app import create_app
from agent.settings import Settings
from tests.helpers import auth
from tests.integration.test_hooks import Client, alerts, am_alert, sample

DEEP = "@deep@"


def nested(depth: int, leaf: Any = 1) -> Any:
    """A JSON value whose containers nest ``depth`` levels (a list inside a list ...)."""
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def with_deep(payload: dict[str, Any], depth: int, leaf: str = "1") -> bytes:
    """``payload`` as JSON text with its ``DEEP`` marker replaced by ``depth`` nested arrays
    (the client's encoder could not write 1,000 levels itself)."""
    return json.dumps(payload).replace(f'"{DEEP}"', "[" * depth + leaf + "]" * depth).encode()


def am_payload(*items: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "x", "alerts": list(items)}


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    return dict((await resp.json())["error"])


async def test_too_many_alerts_is_413_naming_the_setting(hclient: Client) -> None:
    many = [{"labels": {"alertname": "Storm", "i": str(i)}} for i in range(10_001)]
    err = await error_of(await hclient.post("/hooks/alertmanager", json=am_payload(*many)), 413)
    assert err["code"] == "too_many_alerts" and err["param"] == "alerts"
    assert "api.max_alerts_per_payload" in err["message"] and "10000" in err["message"]
    assert (await alerts(hclient))["meta"]["total"] == 0


async def test_labels_and_annotations_are_capped(hclient: Client) -> None:
    ok = am_alert("Fine", "warning", "eu")
    many_labels = am_alert("Wide", "warning", "eu")
    many_labels["labels"].update({f"l{i}": "v" for i in range(126)})  # 129 with the 3 above
    err = await error_of(
        await hclient.post("/hooks/alertmanager", json=am_payload(ok, many_labels)), 422)
    assert (err["code"], err["param"]) == ("too_many_labels", "alerts[1].labels")
    assert "api.max_labels_per_alert" in err["message"]

    many_annotations = am_alert("Chatty", "warning", "eu")
    many_annotations["annotations"] = {f"a{i}": "v" for i in range(129)}
    err = await error_of(
        await hclient.post("/hooks/alertmanager", json=am_payload(many_annotations)), 422)
    assert (err["code"], err["param"]) == ("too_many_annotations", "alerts[0].annotations")

    long_value = am_alert("Long", "warning", "eu")
    long_value["labels"]["instance"] = "€" * 1366  # 4,098 bytes in 1,366 characters
    err = await error_of(
        await hclient.post("/hooks/alertmanager", json=am_payload(long_value)), 422)
    assert (err["code"], err["param"]) == ("label_too_long", "alerts[0].labels.instance")
    assert "api.max_label_bytes" in err["message"]

    long_name = am_alert("LongName", "warning", "eu")
    long_name["labels"]["n" * 4097] = "x"
    err = await error_of(
        await hclient.post("/hooks/alertmanager", json=am_payload(long_name)), 422)
    assert err["code"] == "label_too_long" and err["param"].startswith("alerts[0].labels.nnn")
    assert len(err["param"]) < 200  # the name is shortened in the answer

    long_text = am_alert("Essay", "warning", "eu")
    long_text["annotations"]["description"] = "x" * 16_385
    err = await error_of(
        await hclient.post("/hooks/alertmanager", json=am_payload(long_text)), 422)
    assert (err["code"], err["param"]) == ("annotation_too_long",
                                           "alerts[0].annotations.description")
    assert "api.max_annotation_bytes" in err["message"]
    assert (await alerts(hclient))["meta"]["total"] == 0

    # Exactly at every cap is fine.
    edge = am_alert("Edge", "warning", "eu")
    edge["labels"].update({f"l{i}": "v" for i in range(123)})
    edge["labels"]["instance"] = "€" * 1365  # 4,095 bytes
    edge["labels"]["n" * 4096] = "x"
    edge["annotations"] = {f"a{i}": "v" for i in range(127)} | {"description": "x" * 16_384}
    assert len(edge["labels"]) == 128 and len(edge["annotations"]) == 128
    resp = await hclient.post("/hooks/alertmanager", json=am_payload(edge))
    assert resp.status == 200, await resp.text()


async def test_grafana_and_generic_hooks_apply_the_caps(hclient: Client) -> None:
    payload = sample("grafana-firing.json")
    payload["alerts"][0]["labels"]["zone"] = "z" * 4097
    err = await error_of(await hclient.post("/hooks/grafana", json=payload), 422)
    assert (err["code"], err["param"]) == ("label_too_long", "alerts[0].labels.zone")

    legacy = {"ruleName": "Old", "state": "alerting", "tags": {f"t{i}": "v" for i in range(128)}}
    err = await error_of(await hclient.post("/hooks/grafana", json=legacy), 422)
    assert err["code"] == "too_many_labels"  # 128 tags + alertname

    body = {"alertname": "Backup", "status": "firing", "host": "h" * 4097, "text": "x"}
    err = await error_of(await hclient.post("/hooks/generic/shell", json=body), 422)
    assert (err["code"], err["param"]) == ("label_too_long", "labels.host")
    assert (await alerts(hclient))["meta"]["total"] == 0


async def test_api_alerts_apply_the_caps(hclient: Client) -> None:
    body = {"monitor_id": "web-1", "type": "down", "labels": {f"l{i}": "v" for i in range(129)}}
    resp = await hclient.post("/v1/alerts", json=body, headers=auth())
    err = await error_of(resp, 422)
    assert (err["code"], err["param"]) == ("too_many_labels", "labels")
    body = {"monitor_id": "web-1", "type": "down", "annotations": {"runbook": "r" * 16_385}}
    err = await error_of(await hclient.post("/v1/alerts", json=body, headers=auth()), 422)
    assert (err["code"], err["param"]) == ("annotation_too_long", "annotations.runbook")
    body = {"monitor_id": "web-1", "type": "down", "threshold": {"note": "x" * 16_384}}
    err = await error_of(await hclient.post("/v1/alerts", json=body, headers=auth()), 422)
    assert (err["code"], err["param"]) == ("metadata_too_large", "threshold")


async def test_metadata_is_capped(client: Client) -> None:
    big = {"blob": "x" * 16_384}  # 16,395 bytes as JSON
    send = {"channel": "console", "to": "ops", "message": "hi", "metadata": big}
    err = await error_of(await client.post("/v1/notifications/send", json=send,
                                           headers=auth()), 422)
    assert (err["code"], err["param"]) == ("metadata_too_large", "metadata")
    assert "api.max_metadata_bytes" in err["message"] and "16384" in err["message"]
    alias = {"channel": "console", "to": "ops", "message": "hi", "variables": big}
    err = await error_of(await client.post("/v1/notifications/send", json=alias,
                                           headers=auth()), 422)
    assert err["param"] == "metadata"

    small = {"channel": "console", "to": "ops", "message": "hi", "metadata": {"a": 1}}
    batch = {"notifications": [small, send]}
    err = await error_of(await client.post("/v1/notifications/send-batch", json=batch,
                                           headers=auth()), 422)
    assert (err["code"], err["param"]) == ("metadata_too_large", "notifications[1].metadata")

    tpl = {"name": "t1", "channel": "console", "body": "hi {{ x }}", "metadata": big}
    err = await error_of(await client.post("/v1/templates", json=tpl, headers=auth()), 422)
    assert (err["code"], err["param"]) == ("metadata_too_large", "metadata")
    tpl["metadata"] = {"team": "infra"}
    resp = await client.post("/v1/templates", json=tpl, headers=auth())
    assert resp.status == 201
    tid = (await resp.json())["id"]
    err = await error_of(await client.put(f"/v1/templates/{tid}", json={"metadata": big},
                                          headers=auth()), 422)
    assert (err["code"], err["param"]) == ("metadata_too_large", "metadata")

    listed = await (await client.get("/v1/notifications", headers=auth())).json()
    assert listed["data"] == []
    # Just under the cap is accepted.
    send["metadata"] = {"blob": "x" * (16_384 - 11)}
    assert (await client.post("/v1/notifications/send", json=send, headers=auth())).status == 201


@pytest.mark.parametrize("depth", [65, 253, 300, 1000])
async def test_deep_json_is_400_on_the_api(client: Client, depth: int) -> None:
    send = {"channel": "console", "to": "ops", "message": "hi", "metadata": {"x": DEEP}}
    err = await error_of(await client.post("/v1/notifications/send", data=with_deep(send, depth),
                                           headers=auth()), 400)
    assert err["code"] == "json_too_deep" and "api.max_json_depth" in err["message"]
    listed = await (await client.get("/v1/notifications", headers=auth())).json()
    assert listed["data"] == []


@pytest.mark.parametrize("where", ["extra", "values", "groupKey"])
@pytest.mark.parametrize("depth", [65, 253, 300, 1000])
async def test_deep_json_is_400_on_the_hooks(hclient: Client, where: str, depth: int) -> None:
    leaf = "1"
    if where == "values":
        payload = sample("grafana-firing.json")
        payload["alerts"][0]["values"] = {"B": DEEP}
        path = "/hooks/grafana"
    else:
        payload = am_payload(am_alert("Deep", "warning", "eu"), am_alert("Good", "critical", "eu"))
        if where == "extra":
            payload["alerts"][0]["somethingNew"] = DEEP
        else:
            payload["groupKey"], leaf = DEEP, '"{}:{}"'
        path = "/hooks/alertmanager"
    err = await error_of(await hclient.post(path, data=with_deep(payload, depth, leaf)), 400)
    assert err["code"] == "json_too_deep"
    # Nothing was stored, and every list page still answers.
    listed = await hclient.get("/v1/alerts", headers=auth())
    assert listed.status == 200 and (await listed.json())["meta"]["total"] == 0


async def test_json_at_the_depth_limit_is_stored_and_listed(hclient: Client) -> None:
    payload = am_payload(am_alert("Deep", "warning", "eu"))
    # The body, the alerts array and the alert object are three levels of the 64.
    payload["alerts"][0]["somethingNew"] = nested(61)
    resp = await hclient.post("/hooks/alertmanager", json=payload)
    assert resp.status == 200, await resp.text()
    listed = await hclient.get("/v1/alerts", headers=auth())
    assert listed.status == 200
    assert (await listed.json())["data"][0]["extra"]["somethingNew"] == nested(61)


async def test_hook_credentials_are_checked_before_the_body(rules_settings: Settings) -> None:
    rules_settings.api.max_hook_body_bytes = 1024
    am = rules_settings.sources.alertmanager.auth
    am.bearer_token = SecretStr("s3cret-token")
    am.username, am.password = "am", SecretStr("pw")
    rules_settings.sources.grafana.auth.bearer_token = SecretStr("g-token")
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        big = b'{"alerts": [' + b" " * 4096 + b"]}"
        wrong = "Basic " + base64.b64encode(b"am:nope").decode()
        for path, headers in (("/hooks/alertmanager", {}),
                              ("/hooks/alertmanager", {"Authorization": "Bearer nope"}),
                              ("/hooks/alertmanager", {"Authorization": wrong}),
                              ("/hooks/grafana", {"Authorization": "Bearer s3cret-token"})):
            resp = await c.post(path, data=big, headers=headers)
            err = await error_of(resp, 401)
            assert err["code"] == "invalid_credentials", (path, headers)
        # With the right credentials the body is read, and its size refused.
        ok = {"Authorization": "Bearer s3cret-token"}
        err = await error_of(await c.post("/hooks/alertmanager", data=big, headers=ok), 413)
        assert err["code"] == "body_too_large"
        basic = {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
        resp = await c.post("/hooks/alertmanager", json=am_payload(), headers=basic)
        assert resp.status == 200


async def test_hmac_sources_still_read_the_body_to_verify(rules_settings: Settings) -> None:
    import hashlib
    import hmac

    from agent.settings import SourceSettings

    rules_settings.sources.generic["shell"] = SourceSettings.model_validate(
        {"auth": {"hmac_secret": "k", "bearer_token": "b"}})
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        body = b'{"alertname": "X", "status": "firing", "host": "h"}'
        sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
        assert (await c.post("/hooks/generic/shell", data=body)).status == 401
        assert (await c.post("/hooks/generic/shell", data=body,
                             headers={"X-Signature": sig})).status == 200
        assert (await c.post("/hooks/generic/shell", data=body,
                             headers={"Authorization": "Bearer b"})).status == 200
