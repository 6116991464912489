"""Manage a user's API keys on the configured store, without a token (for local use).

python -m lib.keys create --user <uuid> [--name dev]
python -m lib.keys list   --user <uuid>
python -m lib.keys revoke --user <uuid> <key id>
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from pydantic import ValidationError

from lib import keys
from lib.errors import GatewayError
from lib.schemas import CreateKeyRequest


def _user(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError("must be a user id (a UUID)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.keys", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (shown only this once)")
    create.add_argument("--name", default=None, help="a label, 1 to 100 characters")
    commands.add_parser("list", help="list the user's keys, newest first")
    revoke = commands.add_parser("revoke", help="delete one of the user's keys")
    revoke.add_argument("id", help="the key's id (key_...)")
    for command in commands.choices.values():
        command.add_argument("--user", required=True, type=_user, help="the user's id (a UUID)")
    args = parser.parse_args(argv)

    try:
        if args.command == "create":
            fields = {} if args.name is None else {"name": args.name}
            try:
                name = CreateKeyRequest.model_validate(fields).name  # the route's own rules
            except ValidationError:
                parser.error("--name must be 1 to 100 characters once trimmed")
            result: object = keys.create(args.user, name)
        elif args.command == "list":
            result = {"data": keys.list_keys(args.user)}
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
