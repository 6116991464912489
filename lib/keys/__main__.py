"""Manage a user's API keys on the configured store, without a token (for local use).

python -m lib.keys create --user <uuid> [--name dev]
python -m lib.keys list   --user <uuid>
python -m lib.keys revoke --user <uuid> <key id>
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

from pydantic import ValidationError

from lib import accounts, keys, local_signin, usage
from lib.errors import GatewayError
from lib.schemas import CreateKeyRequest
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (shown only this once)")
    create.add_argument("--name", default=None, help="a label, 1 to 100 characters")
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
            fields = {} if args.name is None else {"name": args.name}
            try:
                name = CreateKeyRequest.model_validate(fields).name  # the route's own rules
            except ValidationError:
                parser.error("--name must be 1 to 100 characters once trimmed")
            result: object = keys.create(args.user, name)
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
