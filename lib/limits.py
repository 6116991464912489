"""Per-minute rate limits, a key's own limits and quota, and the freshness of a cached key.

One fixed window per (caller, modality, UTC minute), per user across all their
keys; a key with `limits` also has its own window, and the `X-RateLimit-*`
headers show whichever of the two is tighter. A key's quota counts its requests
per UTC day or month as they are admitted (exact under any concurrency: the
count is atomic) and its tokens as answers end (`lib/usage`), so one answer may
cross a token cap. All of it, and the key's change marker (`lib.keys.marker`),
is one round trip to the counters (`lib/counters`): an instance that holds an
older version of the key verifies it again, gives the counts back, and counts
with what the key now allows. A request with an access token reads its session's
sign-out marker (`lib.signout`) in that same round trip: a 401 `session_ended`
once signed out. When the counters cannot be used,
RATE_LIMIT_FAILURE_MODE decides: `open` (the default) serves the request
unchecked and says so in `X-RateLimit-Status: unchecked`, `closed` refuses it
with a 503.

A bucket found over its limit is remembered by this process until its window
ends (a key's own bucket for at most a second, so a raised limit holds at once):
the flood that follows is refused from memory, without a store call. The account
routes (/api/keys, /api/usage) have a budget per user (`enforce_account`), and
each key lookup in the store is counted against the sender's address before it
is made (`count_lookup`): a key that verifies gives its count back, so only
refused keys spend the budget, and no more than the limit reach the store
however many arrive at once.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib import keys, signout
from lib.caller import Caller
from lib.counters import Add, CountersUnavailable, Get, Op, Seen, counters, window_key
from lib.deadlines import Deadlines
from lib.errors import GatewayError, RateLimited
from lib.settings import Settings, settings

if TYPE_CHECKING:
    from lib.web import Request

WINDOW_SECONDS = 60
KEY_SPENT_SECONDS = 1  # how long a key's own spent bucket is refused from memory
log = logging.getLogger("cloudgpt")

_spent = Deadlines()  # counter bucket -> until when it is over its limit


@dataclass(frozen=True)
class Decision:
    """The outcome of counting one request against one window."""

    limit: int
    count: int | None  # None: the counters could not be used and the request was not counted
    reset: int  # Unix seconds at which the window ends
    now: float

    @property
    def allowed(self) -> bool:
        return self.count is None or self.count <= self.limit

    @property
    def remaining(self) -> int:
        return self.limit if self.count is None else max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Reset": str(self.reset)}
        if self.count is None:
            headers["X-RateLimit-Status"] = "unchecked"
        else:
            headers["X-RateLimit-Remaining"] = str(self.remaining)
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset - self.now)))
        return headers


@dataclass
class _Plan:
    """One request's operations for the counters, and where each answer of interest is."""

    ops: list[Op]
    marker: int | None = None
    session: int | None = None
    key_window: int | None = None
    requests: int | None = None
    tokens: int | None = None
    quota_end: int = 0

    def add(self, op: Op) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def undo(self) -> list[Op]:
        """Operations giving back this plan's counts (the failed-authentication refund is kept)."""
        return [Add(op.key, -op.by, op.ttl) for op in self.ops if isinstance(op, Add) and op.by > 0]


def enforce(caller: Caller, modality: str) -> dict[str, str]:
    """Count this request; its rate-limit headers, or a 429 past a window, a key's limit or its quota."""
    current = settings()
    limits = current.limits[modality]
    limit = limits.authenticated if caller.authenticated else limits.anonymous
    return _enforce(caller, modality, f"{modality}:{caller.bucket}", limit, f"{modality} requests")


def enforce_account(request: Request, user: str) -> None:
    """Count a call to an account route (keys, usage) against the user's own budget; 429 past it.

    Called with a key, the key's marker is read in the same round trip: a key
    changed or deleted elsewhere is verified again (401 once deleted or disabled).
    """
    caller = request.environ.get("cloudgpt.caller")
    if not isinstance(caller, Caller) or caller.id != user:
        caller = Caller("user", user)
    limit = settings().account_limit
    request.response_headers.update(_enforce(caller, None, f"account:user:{user}", limit, "account requests"))


def count_lookup(address: str) -> str:
    """Before the key store is asked about a key: count the lookup against the sender's address.

    The count and the check are one atomic step, so however many keys arrive at once
    at most RATE_LIMIT_FAILED_AUTH of them reach the store; a 429 past it. Answers
    the counter to give back once the key verifies (`Caller.refund`).
    """
    current = settings()
    now = time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    bucket = f"auth_failures:{address}"
    counter = window_key(bucket, window)
    if not _spent.holds(bucket, now):
        try:
            (failures,) = counters(current).run([Add(counter)])
        except CountersUnavailable as error:
            _unavailable(current, "key check", error)
            return ""
        if (failures or 0) <= current.failed_auth_limit:
            return counter
        _spent.remember(bucket, window + WINDOW_SECONDS)
    headers = Decision(
        current.failed_auth_limit, current.failed_auth_limit + 1, window + WINDOW_SECONDS, now
    ).headers()
    raise RateLimited(
        f"Too many invalid API keys from this address; retry after {headers['Retry-After']} s.",
        code="too_many_failed_authentications",
        headers=headers,
    )


def give_back(counted: list[str]) -> None:
    """Return lookups' counts (`count_lookup`) that were not refusals: the store failed."""
    _run_quietly([Add(counter, -1) for counter in counted if counter], "key lookup count not given back")


def _plan(caller: Caller, modality: str | None, account_counter: str, now: float, window: int) -> _Plan:
    plan = _Plan([Add(account_counter)])
    key = caller.key
    if caller.refund:
        plan.add(Add(caller.refund, -1))
    if caller.session is not None:
        plan.session = plan.add(Seen(signout.marker(caller.session)))
    if key is None:
        return plan
    plan.marker = plan.add(Seen(keys.marker(key.key_id)))
    if modality is None:
        return plan
    if key.limits.get(modality) is not None:
        plan.key_window = plan.add(Add(window_key(f"{modality}:key:{key.key_id}", window)))
    if key.quota is not None:
        requests, tokens, plan.quota_end = key.quota.tallies(key.key_id, now)
        ttl = plan.quota_end - int(now) + 86_400  # a day past its period, as the window keys outlive theirs
        plan.requests = plan.add(Add(requests, ttl=ttl))  # counted even without a cap: quotaUsed shows it
        if key.quota.tokens is not None:
            plan.tokens = plan.add(Get(tokens))
    return plan


def _enforce(caller: Caller, modality: str | None, bucket: str, limit: int, what: str) -> dict[str, str]:
    current = settings()
    now = time.time()
    window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    reset = window + WINDOW_SECONDS
    if caller.session is not None and signout.is_ended(caller.session):
        raise signout.refusal()
    if _spent.holds(bucket, now) or (caller.key and _spent.holds(f"{modality}:key:{caller.key_id}", now)):
        _refuse(Decision(limit, limit + 1, reset, now), what)
    plan = _plan(caller, modality, window_key(bucket, window), now, window)
    try:
        answers = counters(current).run(plan.ops)
        if plan.session is not None and answers[plan.session]:
            _ended(caller, plan)
        if plan.marker is not None and (answers[plan.marker] or 0) > caller.key.version:
            answers, plan = _changed(caller, modality, plan, window_key(bucket, window), now, window)
    except CountersUnavailable as error:
        _unavailable(current, what, error)
        return Decision(limit, None, reset, now).headers()
    return _decide(
        caller, modality, bucket, plan, answers, Decision(limit, int(answers[0]), reset, now), what
    )


def _ended(caller: Caller, plan: _Plan) -> None:
    """The session was signed out elsewhere: give back the counts, remember it, 401."""
    signout.remember(caller.session, caller.session_expires)
    _run_quietly(plan.undo(), "counts of a signed-out session not given back")
    raise signout.refusal()


def _changed(
    caller: Caller, modality: str | None, stale: _Plan, counter: str, now: float, window: int
) -> tuple[list, _Plan]:
    """The key changed elsewhere: verify it again, give back what was counted, count anew."""
    try:
        caller.key = keys.reverify(caller.key)
        refusal = caller.key.refusal(now)
        if refusal is not None:
            raise refusal
    except GatewayError:
        _run_quietly(stale.undo(), "counts of a refused key not given back")
        raise
    undo = stale.undo()
    plan = _plan(Caller(caller.kind, caller.id, caller.key), modality, counter, now, window)
    answers = counters(settings()).run([*undo, *plan.ops])
    return answers[len(undo) :], plan


def _decide(
    caller: Caller,
    modality: str | None,
    bucket: str,
    plan: _Plan,
    answers: list,
    account: Decision,
    what: str,
) -> dict[str, str]:
    """The tighter of the account's and the key's windows, then the key's quota: headers, or a 429."""
    key = caller.key
    tightest = account
    if plan.key_window is not None:
        mine = Decision(key.limits[modality], int(answers[plan.key_window]), account.reset, account.now)
        if not mine.allowed or (account.allowed and mine.remaining < account.remaining):
            tightest = mine
    if not account.allowed:
        tightest = account
    if not tightest.allowed:
        _give_back(plan)
        if tightest is account:
            _spent.remember(bucket, account.reset)
        else:
            _spent.remember(
                f"{modality}:key:{caller.key_id}", min(account.reset, account.now + KEY_SPENT_SECONDS)
            )
        _refuse(tightest, what if tightest is account else f"{modality} requests with this key")
    headers = tightest.headers()
    quota = key.quota if key else None
    if quota is not None and modality is not None:
        over = None
        if quota.requests is not None and answers[plan.requests] > quota.requests:
            over = f"{quota.requests} requests"
        elif plan.tokens is not None and (answers[plan.tokens] or 0) >= quota.tokens:
            over = f"{quota.tokens} tokens"
        if over is not None:
            _give_back(plan)
            retry = max(1, math.ceil(plan.quota_end - account.now))
            raise RateLimited(
                f"This API key's quota of {over} per {quota.period} (UTC) is used up; "
                f"it resets in {retry} s.",
                code="key_quota_exceeded",
                headers=headers | {"Retry-After": str(retry)},
            )
    return headers


def _give_back(plan: _Plan) -> None:
    """A refused request's quota count is returned: the count is of admitted requests.

    Counts above the cap are seen only while refused requests give theirs back, so at
    most the cap is ever admitted."""
    if plan.requests is not None:
        counted = plan.ops[plan.requests]
        _run_quietly([Add(counted.key, -1, counted.ttl)], "quota count not given back")


def _run_quietly(ops: list[Op], lost: str) -> None:
    try:
        counters(settings()).run(ops)
    except CountersUnavailable as error:
        log.warning("%s: counters unavailable (%r)", lost, error.__cause__)


def _refuse(decision: Decision, what: str) -> None:
    headers = decision.headers()
    raise RateLimited(
        f"Rate limit of {decision.limit} {what} per minute reached; retry after {headers['Retry-After']} s.",
        headers=headers,
    )


def _unavailable(current: Settings, what: str, error: CountersUnavailable) -> None:
    """RATE_LIMIT_FAILURE_MODE: `closed` raises the 503, `open` lets the request through unchecked."""
    closed = current.rate_limit_failure_mode == "closed"
    outcome = "refused" if closed else "served unchecked"
    log.warning("%s %s: rate-limit counters unavailable (%r)", what, outcome, error.__cause__)
    if closed:
        raise error
