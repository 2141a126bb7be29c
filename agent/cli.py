"""``alert-agent run | check | routes test | send | retry | ack | keys | oncall``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent import __version__, cli_ack, cli_keys, cli_oncall, cli_retry
from agent.observability import configure_logging
from agent.settings import ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alert-agent", description=__doc__)
    p.add_argument("--version", action="version", version=f"alert-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, help="YAML config file (env ALERT_AGENT_* overrides)")

    check = sub.add_parser("check", help="validate the config and the rules, then exit")
    check.add_argument("--config", type=Path, help="YAML config file")
    check.add_argument("--rules", type=Path, help="rules directory (default: from the config)")

    routes = sub.add_parser("routes", help="inspect routing")
    routes_sub = routes.add_subparsers(dest="routes_command", required=True)
    rtest = routes_sub.add_parser(
        "test", help="show which routes an alert with these labels takes and what is sent")
    rtest.add_argument("--rules", type=Path, default=None, help="rules directory")
    rtest.add_argument("--config", type=Path, help="YAML config file (for its rules_dir)")
    rtest.add_argument("--source", default="alertmanager",
                       help="alertmanager | grafana | generic:<name> | api")
    rtest.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    rtest.add_argument("labels", nargs="+", metavar="LABEL=VALUE")

    cli_keys.add_parser(sub)

    send = sub.add_parser("send", help="send a notification through a running daemon's API")
    send.add_argument("--url", default=os.environ.get("ALERT_AGENT_URL", "http://127.0.0.1:9095"))
    send.add_argument("--api-key", default=os.environ.get("ALERT_AGENT_API_KEY"),
                      help="defaults to $ALERT_AGENT_API_KEY")
    send.add_argument("--channel", required=True)
    send.add_argument("--to", required=True)
    send.add_argument("--message")
    send.add_argument("--template-id")
    send.add_argument("--severity")
    send.add_argument("--priority")
    send.add_argument("--schedule-at")
    send.add_argument("--idempotency-key")
    send.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                      help="metadata entry (repeatable)")
    cli_retry.add_parser(sub)
    cli_ack.add_parser(sub)
    cli_oncall.add_parser(sub)
    return p


def _load(config: Path | None) -> Settings:
    return load_settings(config)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = _load(args.config)
    except ConfigError as exc:
        print(f"alert-agent: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level, settings.log.format)
    from agent.daemon import serve

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(settings))


def _check(args: argparse.Namespace) -> int:
    from agent.api.hookauth import insecure_sources
    from agent.app import check_channels, check_secrets
    from agent.channels.registry import target_problem
    from agent.routing.loader import RulesError, load_rules

    try:
        settings = _load(args.config)
        hooks = check_secrets(settings)  # every secret, resolved as the daemon resolves it
        channels = check_channels(settings)  # every channel that cannot be built, at once
    except ConfigError as exc:
        print(f"alert-agent: config error: {exc}", file=sys.stderr)
        return 2
    rules_dir = args.rules or settings.rules_dir
    try:
        rules = load_rules(rules_dir, check_target=lambda channel, to:
                           target_problem(channels, channel, to),
                           allow_unlisted=settings.recipients.unlisted_channels)
    except RulesError as exc:
        for problem in exc.problems:
            print(f"alert-agent: rules error: {problem}", file=sys.stderr)
        return 1
    open_sources = insecure_sources(settings.host, hooks, rules.generic_sources)
    if open_sources:
        print(f"alert-agent: config error: listening on {settings.host} (not loopback) but these "
              f"sources have no auth: {', '.join(open_sources)}", file=sys.stderr)
        return 2
    print(f"config ok: listening on {settings.host}:{settings.port}, data in {settings.data_dir}")
    print(f"rules ok: {len(rules.files)} file(s) in {rules_dir}, "
          f"{len(rules.routes_by_id) - 1} route(s), {len(rules.templates)} template(s), "
          f"{len(rules.generic_sources)} generic source(s)")
    return 0


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ValueError(f"{what} must look like NAME=VALUE, got {item!r}")
        out[k] = v.strip('"')
    return out


def _routes_test(args: argparse.Namespace) -> int:
    from agent.grouping.explain import explain
    from agent.routing.loader import RulesError, load_rules

    try:
        rules_dir = args.rules or _load(args.config).rules_dir
        labels = _pairs(args.labels, "a label")
        annotations = _pairs(args.annotation, "--annotation")
        rules = load_rules(rules_dir)
    except (ConfigError, ValueError) as exc:
        print(f"alert-agent: {exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        for problem in exc.problems:
            print(f"alert-agent: rules error: {problem}", file=sys.stderr)
        return 1
    print(explain(rules, args.source, labels, annotations))
    return 0


def _send(args: argparse.Namespace) -> int:
    if not args.api_key:
        print("alert-agent send: no API key (use --api-key or $ALERT_AGENT_API_KEY)",
              file=sys.stderr)
        return 2
    body: dict[str, Any] = {"channel": args.channel, "to": args.to}
    for name in ("message", "template_id", "severity", "priority", "schedule_at",
                 "idempotency_key"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    meta: dict[str, str] = {}
    for item in args.meta:
        k, sep, v = item.partition("=")
        if not sep:
            print(f"alert-agent send: --meta needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        meta[k] = v
    if meta:
        body["metadata"] = meta
    req = urllib.request.Request(
        args.url.rstrip("/") + "/v1/notifications/send",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {args.api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            print(resp.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"alert-agent send: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"run": _run, "check": _check, "send": _send, "routes": _routes_test,
                "keys": cli_keys.run, "retry": cli_retry.run, "ack": cli_ack.run,
                "oncall": cli_oncall.run}
    return handlers[args.command](args)
