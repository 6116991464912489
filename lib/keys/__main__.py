"""Manage a user's API keys on the configured store, without a token (for local use).

python -m lib.keys create --user <uuid> [--name dev] [controls]
python -m lib.keys update --user <uuid> <key id> [--name dev] [controls]
python -m lib.keys list   --user <uuid>
python -m lib.keys revoke --user <uuid> <key id>

Controls: --expires <Unix s> | --no-expires, --disable | --enable,
--models openai,flux | --no-models, --limit-chat/--limit-image/--limit-video <n>
(together they replace the key's limits) | --no-limits, --quota-period day|month
with --quota-requests <n> and/or --quota-tokens <n> | --no-quota.
python -m lib.keys usage  --user <uuid> [--days 30] [--key <key id>]

`--operator` in place of `--user <uuid>` is the local dashboard's user (the embedded
default, without Supabase): the keys it makes are the ones the dashboard shows after
a `make signin` link.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from lib import accounts, keys, local_signin, usage
from lib.errors import GatewayError
from lib.usage.query import parse_days, parse_key_id


def _user(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError("must be a user id (a UUID)") from None


def usage_table(report: dict[str, Any]) -> str:
    """GET /api/usage's answer as a table: a row per day, key, model and modality, then the totals."""
    head = list(usage.USAGE_COLUMNS)
    rows = [[str(row[name]) if row[name] is not None else "-" for name in head] for row in report["data"]]
    rows.append(["total", "", "", "", *(str(report["totals"][name]) for name in usage.METRICS)])
    widths = [max(len(line[i]) for line in [head, *rows]) for i in range(len(head))]
    lines = [head, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _controls_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--name", default=None, help="a label, 1 to 100 characters")
    command.add_argument("--expires", type=int, help="Unix seconds after which the key is refused")
    command.add_argument("--no-expires", action="store_true", help="no expiry")
    command.add_argument("--disable", action="store_true", help="refuse the key until enabled")
    command.add_argument("--enable", action="store_true", help="enable a disabled key")
    command.add_argument("--models", help="comma-separated catalog model ids the key may call")
    command.add_argument("--no-models", action="store_true", help="every model")
    for modality in ("chat", "image", "video"):
        command.add_argument(
            f"--limit-{modality}", type=int, help=f"the key's own {modality} requests per minute"
        )
    command.add_argument("--no-limits", action="store_true", help="no limits of the key's own")
    command.add_argument("--quota-period", choices=("day", "month"), help="the quota's UTC period")
    command.add_argument("--quota-requests", type=int, help="requests per period")
    command.add_argument("--quota-tokens", type=int, help="tokens per period")
    command.add_argument("--no-quota", action="store_true", help="no quota")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as the fields of POST or PATCH /api/keys."""
    fields: dict[str, Any] = {} if args.name is None else {"name": args.name}
    if args.expires is not None or args.no_expires:
        fields["expires"] = args.expires
    if args.disable or args.enable:
        fields["disabled"] = args.disable
    if args.models is not None or args.no_models:
        fields["models"] = args.models.split(",") if args.models else None
    limits = {m: getattr(args, f"limit_{m}") for m in ("chat", "image", "video")}
    if any(v is not None for v in limits.values()) or args.no_limits:
        fields["limits"] = None if args.no_limits else limits
    if args.quota_period or args.no_quota:
        quota = {"period": args.quota_period, "requests": args.quota_requests, "tokens": args.quota_tokens}
        fields["quota"] = None if args.no_quota else quota
    return fields


def _checked(parser: argparse.ArgumentParser, schema: str, fields: dict[str, Any]) -> Any:
    """The fields checked by the routes' own rules; the first failure names its field."""
    from lib.validation import parse_fields

    try:
        body = parse_fields(schema, fields)
        keys.checked_controls(body.model_dump(include=body.model_fields_set))
    except GatewayError as error:
        parser.error(error.message)
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (shown only this once)")
    _controls_arguments(create)
    update = commands.add_parser("update", help="change a key's name or controls")
    update.add_argument("id", help="the key's id (key_...)")
    _controls_arguments(update)
    commands.add_parser("list", help="list the user's keys, newest first")
    revoke = commands.add_parser("revoke", help="delete one of the user's keys")
    revoke.add_argument("id", help="the key's id (key_...)")
    report = commands.add_parser(
        "usage", help="the user's usage per day, key, model and modality, as a table"
    )
    report.add_argument("--days", help="UTC days to cover, today included (1 to 90, default 30)")
    report.add_argument("--key", help="only this key's usage (key_...)")
    for command in commands.choices.values():
        who = command.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", type=_user, help="the user's id (a UUID)")
        who.add_argument(
            "--operator", action="store_true", help="the local dashboard's user (make dev, no Supabase)"
        )
    args = parser.parse_args(argv)
    if args.operator and accounts.mode() != "local":
        parser.error(
            "--operator is the local dashboard's user, which exists only without Supabase and off "
            "Vercel; give --user <uuid>"
        )

    try:
        if args.operator:
            args.user = local_signin.operator()
        if args.command == "create":
            body = _checked(parser, "CreateKeyRequest", _fields(args))
            result: object = keys.create(args.user, body.name, body.controls())
        elif args.command == "update":
            body = _checked(parser, "UpdateKeyRequest", _fields(args))
            result = keys.update(args.user, args.id, body.changes())
            if result is None:
                print(f"error: the user has no key {args.id}", file=sys.stderr)
                return 1
        elif args.command == "list":
            result = {"data": keys.list_keys(args.user)}
        elif args.command == "usage":
            print(usage_table(usage.report(args.user, parse_days(args.days), parse_key_id(args.key))))
            return 0
        elif not keys.revoke(args.user, args.id):
            print(f"error: the user has no key {args.id}", file=sys.stderr)
            return 1
        else:
            result = {"deleted": True, "id": args.id}
    except GatewayError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
