"""`lakehouse models ...`: list, show, promote and roll back registered models."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lakehouse.paths import LakePaths

# Registry errors are the user's to fix (a mistyped version, nothing to roll back to): exit 2, like argparse.
USAGE_ERROR = 2


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def _number(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_models_table(rows: list[dict[str, Any]]) -> str:
    """Models as an aligned text table; * marks each domain's champion."""
    header = ("VERSION", "DOMAIN", "CREATED (UTC)", "TEST AUC", "THRESHOLD", "CHAMPION", "STATUS")
    lines = [
        (
            r["tag"],
            r["domain"],
            r["created"][:16].replace("T", " "),
            _number(r["test_roc_auc"], 4),
            _number(r["threshold"], 3),
            "*" if r["champion"] else "",
            r["status"] or "",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *lines])


def cmd_list(args: argparse.Namespace) -> int:
    from lakehouse.ml.model_registry import list_models

    rows = list_models(LakePaths.from_env(), args.domain)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif not rows:
        print("no models registered" + (f" for domain {args.domain}" if args.domain else ""))
    else:
        print(format_models_table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from lakehouse.ml.model_registry import ModelIntegrityError, RegistryError, load_model_text, show_model

    paths = LakePaths.from_env()
    try:
        info = show_model(paths, args.version)
    except RegistryError as e:
        return _fail(str(e))
    try:
        load_model_text(paths, info["tag"])
        info["integrity"] = "ok"
    except ModelIntegrityError as e:
        info["integrity"] = f"FAILED: {e}"
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for key in (
            "tag",
            "domain",
            "created",
            "status",
            "champion",
            "test_roc_auc",
            "threshold",
            "feature_service",
            "code_version",
            "model_sha256",
            "integrity",
            "path",
        ):
            print(f"{key + ':':17} {info[key]}")
        print("labels:", json.dumps(info["labels"], sort_keys=True))
        print("metadata:", json.dumps(info["metadata"], indent=2, sort_keys=True, default=str))
        for event in info["champion_history"]:
            print(f"champion history: {event['at']} {event['action']}: {event['reason']}")
    # The details still print, so the operator sees which model is damaged.
    return 0 if info["integrity"] == "ok" else _fail(info["integrity"])


def cmd_promote(args: argparse.Namespace) -> int:
    from lakehouse.ml.model_registry import RegistryError, promote, show_model

    paths = LakePaths.from_env()
    try:
        domain = show_model(paths, args.version)["domain"]
        tag = promote(paths, domain, args.version, args.reason, action="manual")
    except RegistryError as e:
        return _fail(str(e))
    print(f"{tag} is now the {domain} champion")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from lakehouse.ml.model_registry import RegistryError, registered_domains, rollback

    paths = LakePaths.from_env()
    domain = args.domain
    if domain is None:
        domains = registered_domains(paths)
        if len(domains) != 1:
            return _fail(
                "nothing to roll back: no champion yet"
                if not domains
                else f"several domains have champions ({', '.join(domains)}); pass --domain"
            )
        domain = domains[0]
    try:
        tag = rollback(paths, domain, args.reason)
    except RegistryError as e:
        return _fail(str(e))
    print(f"rolled back: {tag} is the {domain} champion again")
    return 0


def add_models_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `models list|show|promote|rollback` to the CLI's subparsers."""
    models = subparsers.add_parser("models", help="list, inspect, promote and roll back registered models")
    sub = models.add_subparsers(dest="models_command", required=True)

    p = sub.add_parser("list", help="registered models, newest first (* marks the champion)")
    p.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    p.add_argument("--domain", help="only this domain's models")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one model's metadata, labels, champion history and integrity check")
    p.add_argument("version", help="tag (<domain>_model:<version>) or version; a unique prefix is enough")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("promote", help="make a model its domain's champion (recorded as a manual promotion)")
    p.add_argument("version", help="tag (<domain>_model:<version>) or version; a unique prefix is enough")
    p.add_argument("--reason", required=True, help="why, for the champion history")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="make the previous champion the champion again")
    p.add_argument("--domain", help="needed only when several domains have champions")
    p.add_argument("--reason", default="manual rollback", help="why, for the champion history")
    p.set_defaults(func=cmd_rollback)
    return models
