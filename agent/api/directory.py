"""``/v1/teams`` and ``/v1/members``: the team directory as loaded from the rule files.

Test keys read it too (to see whom a test send would reach), with the personal addresses
(sms, whatsapp, email) masked. ``/v1/teams/{id}/oncall`` says who of a team's rotation is on
call (agent/oncall.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web

from agent.api.context import ctx
from agent.api.errors import ApiError, json_response
from agent.api.middleware import API_KEY
from agent.directory import Directory, Member, Team, mask, on_call
from agent.domain import iso, parse_iso

routes = web.RouteTableDef()
T = TypeVar("T")


def _member(m: Member, masked: bool) -> dict[str, Any]:
    return {
        "id": m.id, "object": "member", "name": m.name, "approved": m.approved,
        "timezone": m.timezone,
        "addresses": {ch: mask(ch, a) if masked else a for ch, a in sorted(m.addresses.items())},
    }


def _team(t: Team, d: Directory, masked: bool, full: bool) -> dict[str, Any]:
    members = [d.members[mid] for mid in t.members]
    out: dict[str, Any] = {"id": t.id, "object": "team", "name": t.name,
                           "member_ids": list(t.members),
                           "approved_count": sum(m.approved for m in members)}
    if full:
        out["members"] = [_member(m, masked) for m in members]
    return out


@routes.get("/v1/teams")
async def list_teams(request: web.Request) -> web.Response:
    d = ctx(request).rules().directory
    masked = request[API_KEY].simulated
    return json_response({"object": "list", "data": [
        _team(d.teams[tid], d, masked, full=False) for tid in sorted(d.teams)]})


def _found(request: web.Request, entries: Mapping[str, T], kind: str) -> T:
    """The entry the path's ``id`` names; 404 when the directory has none."""
    found = entries.get(request.match_info["id"])
    if found is None:
        raise ApiError(404, "resource_missing",
                       f"No such {kind}: '{request.match_info['id']}'.", "id")
    return found


@routes.get("/v1/teams/{id}")
async def get_team(request: web.Request) -> web.Response:
    d = ctx(request).rules().directory
    team = _found(request, d.teams, "team")
    return json_response(_team(team, d, request[API_KEY].simulated, full=True))


@routes.get("/v1/members/{id}")
async def get_member(request: web.Request) -> web.Response:
    d = ctx(request).rules().directory
    member = _found(request, d.members, "member")
    out = _member(member, request[API_KEY].simulated)
    out["team_ids"] = sorted(t.id for t in d.teams.values() if member.id in t.members)
    return json_response(out)


@routes.get("/v1/teams/{id}/oncall")
async def get_on_call(request: web.Request) -> web.Response:
    c = ctx(request)
    team = _found(request, c.rules().directory.teams, "team")
    at = c.clock.now()
    if "at" in request.query:
        try:
            at = parse_iso(request.query["at"])
        except ValueError:
            raise ApiError(400, "invalid_value", "'at' must be an ISO 8601 timestamp.",
                           "at") from None
    try:
        found = on_call(c.rules().directory, team.id, at)
    except ValueError:  # beyond the years a calendar computes
        raise ApiError(400, "invalid_value", "'at' is outside the years a rotation can be "
                       "computed for.", "at") from None
    if found is None:
        raise ApiError(404, "resource_missing",
                       f"Team '{team.id}' has no on-call rotation (oncall: in the rule files).",
                       "id")
    return json_response({"on_call": list(found.members), "next": list(found.next),
                          "until": iso(found.until)})
