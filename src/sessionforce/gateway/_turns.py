"""User messages: claimed once by client message id, run once, answered the same way to every retry.

A message's first attempt *claims* its id in the shared state and runs the turn in a task of its own (a
browser that goes away mid-turn does not cancel it). Every event of the turn goes to the conversation's
log, tagged with the message id; the outcome (what a JSON request answers) is a pure function of those
events, kept with the claim. A retry, on any worker, either finds the outcome or follows the log until
the turn's last event; if the worker running it died (its claim expired), the retry takes the claim
over and records the honest outcome: the message may have been delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics

from sessionforce.gateway._agent import Agent, Failure, TurnRequest, describe_failure
from sessionforce.gateway._config import GatewaySettings
from sessionforce.gateway._errors import GatewayError
from sessionforce.gateway._hub import EventWriter, Hub, follow
from sessionforce.gateway._state import GatewayState, MessageClaim, StateUnavailable

__all__ = ["Attempt", "Outcome", "Turns"]

logger = logging.getLogger("sessionforce.gateway")

TERMINAL = frozenset({"turn.end", "turn.error"})

STATUS = {
    "invalid_request": 400, "agent_refused": 400, "turn_in_progress": 409, "conversation_ended": 409,
    "not_recorded": 500, "internal_error": 500, "agent_error": 502, "reply_incomplete": 502,
    "agent_unreachable": 503, "agent_busy": 503, "agent_unavailable": 503, "unavailable": 503, "shutdown": 503,
    "delivery_unknown": 504,
}
"""HTTP status of a JSON answer by failure code: 4xx the request, 502/504 the agent, 503 try again later."""

RETRY_SOON = 2.0
"""Retry-After (seconds) for failures that a later attempt may not meet."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a JSON request for a message answers: status, body and ``Retry-After``."""

    status: int
    body: dict[str, Any]
    retry_after: float | None = None

    def to_json(self) -> str:
        """Kept with the message's claim for retries."""
        return json.dumps({"status": self.status, "body": self.body, "retry_after": self.retry_after},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        """Read one back."""
        data = json.loads(text)
        return cls(int(data["status"]), data["body"], data.get("retry_after"))

    @property
    def delivery(self) -> str:
        """``answered`` for a reply, else the failure's delivery."""
        error = self.body.get("error")
        return str(error.get("delivery", "not_sent")) if isinstance(error, dict) else "answered"


def build_outcome(conversation_id: str, message_id: str, events: Iterable[tuple[int | None, str, dict[str, Any]]]
                  ) -> Outcome:
    """The outcome of a turn from its events, oldest first, ending with ``turn.end`` or ``turn.error``."""
    messages: list[Any] = []
    greeting: list[Any] = []
    last: tuple[int | None, str, dict[str, Any]] | None = None
    for event in events:
        _, kind, data = last = event
        if kind == "agent.message":
            messages.append(data.get("message"))
        elif kind == "session.started" and not greeting:
            greeting = list(data.get("greeting") or [])
    assert last is not None, "a turn has events"
    assert last[1] in TERMINAL, "a turn's events end with its outcome"
    last_id, kind, data = last
    body: dict[str, Any] = {"message_id": message_id, "conversation_id": conversation_id}
    if kind == "turn.end":
        body.update(turn=data, messages=messages, greeting=greeting,
                    last_event_id=None if last_id is None else str(last_id))
        return Outcome(200, body)
    error = data["error"]
    body.update(error=error, messages=messages, last_event_id=None if last_id is None else str(last_id))
    return Outcome(STATUS.get(error.get("code"), 500), body, error.get("retry_after"))


def fingerprint(request: TurnRequest) -> str:
    """What the message says: a retry must say the same."""
    text = "\x1f".join((request.type, request.in_reply_to or "", request.text))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def turn_error(message_id: str, failure: Failure) -> dict[str, Any]:
    """``turn.error`` data for ``failure``."""
    error: dict[str, Any] = {"code": failure.code, "message": failure.message, "delivery": failure.delivery}
    retry_after = failure.retry_after
    if retry_after is None and failure.delivery == "not_sent" and STATUS.get(failure.code, 0) in (409, 503):
        retry_after = RETRY_SOON
    if retry_after is not None:
        error["retry_after"] = retry_after
    return {"message_id": message_id, "error": error}


@dataclass
class Attempt:
    """Where a message's answer comes from: this worker's running turn, a finished outcome, or a claim
    held elsewhere (followed through the log)."""

    request: TurnRequest
    after: int
    task: asyncio.Task[Outcome] | None = None
    claim: MessageClaim | None = None
    outcome: Outcome | None = field(default=None)


class Turns:
    """This worker's running turns, and the way to answer any message on any worker."""

    def __init__(self, agent: Agent, state: GatewayState, writer: EventWriter, hub: Hub,
                 settings: GatewaySettings, origin: str, deduplicated: metrics.Counter | None = None) -> None:
        self._agent = agent
        self._deduplicated = deduplicated
        """A counter (``add(1)``) of the messages answered from an earlier POST of the same id."""
        self._state = state
        self._writer = writer
        self._hub = hub
        self._settings = settings
        self._origin = origin
        self._running: dict[tuple[str, str], tuple[asyncio.Task[Outcome], int]] = {}
        self._active: Counter[str] = Counter()
        self._renewers: dict[tuple[str, str], asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        """Turns running in this worker."""
        return len(self._running)

    def tasks(self) -> list[asyncio.Task[Outcome]]:
        """The running turns' tasks (for shutdown)."""
        return [task for task, _ in self._running.values()]

    async def submit(self, request: TurnRequest) -> Attempt:
        """Claim the message id and start the turn, or find out where its answer is."""
        key = (request.conversation_id, request.message_id)
        local = self._running.get(key)
        if local is not None:
            self._duplicate()
            return Attempt(request, local[1], task=local[0])
        owner = f"{self._origin}:{secrets.token_hex(6)}"
        won, claim = await self._state.claim(request.conversation_id, request.message_id, fingerprint(request), owner,
                                             self._settings.lease_ttl)
        if not won:
            if claim.fingerprint != fingerprint(request):
                raise GatewayError(409, "message_id_reused", "This message id was already used for a different "
                                   "message. What to do: give every new message a new id; reuse one only to retry.")
            self._duplicate()
            if claim.state == "done" and claim.outcome is not None:
                return Attempt(request, claim.after, claim=claim, outcome=Outcome.from_json(claim.outcome))
            return Attempt(request, claim.after, claim=claim)
        if self._active[request.conversation_id] > self._settings.max_queued:
            await self._state.settle(request.conversation_id, request.message_id, owner, None)
            raise GatewayError(409, "turn_in_progress", "Too many messages of this conversation are waiting. What to "
                               "do: wait for the replies, then send again.", retry_after=RETRY_SOON)
        self._active[request.conversation_id] += 1
        task = asyncio.get_running_loop().create_task(self._run(request, owner, claim.after))
        self._running[key] = (task, claim.after)
        task.add_done_callback(lambda _: self._finished(key))
        return Attempt(request, claim.after, task=task)

    def _duplicate(self) -> None:
        if self._deduplicated is not None:
            self._deduplicated.add(1)

    def _finished(self, key: tuple[str, str]) -> None:
        del self._running[key]
        self._active[key[0]] -= 1
        if not self._active[key[0]]:
            del self._active[key[0]]
        self._hub.notify(key[0])  # wake whoever follows this turn, should its last event have failed to append

    async def _run(self, request: TurnRequest, owner: str, after: int) -> Outcome:
        """Run the turn; its outcome is recorded however it ends (cancellation included: it is recorded and
        returned, not raised, so the requests waiting on it get their answer)."""
        cid, mid = request.conversation_id, request.message_id
        events: list[tuple[int | None, str, dict[str, Any]]] = []

        def emit(kind: str, data: dict[str, Any]) -> None:
            events.append((None, kind, data))
            self._writer.publish(cid, kind, data, mid)

        call = self._agent.turn(request, emit)
        started = asyncio.get_running_loop().time()
        # Most turns end well within a third of the ttl: a timer, and a renewing task only for long ones.
        renewal = asyncio.get_running_loop().call_later(self._settings.lease_ttl / 3, self._start_renewal, cid, mid,
                                                        owner)
        terminal: tuple[str, dict[str, Any]]
        try:
            async for kind, data in call.events():
                if kind in TERMINAL:
                    terminal = (kind, data)
                else:
                    emit(kind, data)
        except (Exception, asyncio.CancelledError) as exc:
            failure = describe_failure(exc, call.sent)
            level = logging.INFO if failure.delivery == "not_sent" else logging.WARNING
            logger.log(level, "message %s failed: %s, %s (%s)", mid, failure.code, failure.delivery,
                       type(exc).__name__, extra={"conversationId": cid, "messageId": mid, **call.ids},
                       exc_info=failure.code == "internal_error")
            terminal = ("turn.error", turn_error(mid, failure))
        finally:
            renewal.cancel()
            renewer = self._renewers.pop((cid, mid), None)
            if renewer is not None:
                renewer.cancel()
        future = self._writer.publish(cid, *terminal, mid, wait=True)
        assert future is not None
        last_id: int | None
        try:
            last_id = await future
        except StateUnavailable:
            last_id = None
        events.append((last_id, *terminal))
        outcome = build_outcome(cid, mid, events)
        if terminal[0] == "turn.end":
            logger.info("message %s answered in %.0f ms", mid, (asyncio.get_running_loop().time() - started) * 1000,
                        extra={"conversationId": cid, "messageId": mid, **call.ids})
        keep = outcome.delivery != "not_sent"  # nothing was sent: let a retry of this id run it afresh
        try:
            if not await self._state.settle(cid, mid, owner, outcome.to_json() if keep else None):
                logger.warning("message %s was taken over before it finished", mid,
                               extra={"conversationId": cid, "messageId": mid})
        except StateUnavailable as exc:
            logger.warning("could not record the outcome of message %s: %s", mid, exc,
                           extra={"conversationId": cid, "messageId": mid})
        return outcome

    def _start_renewal(self, conversation_id: str, message_id: str, owner: str) -> None:
        task = asyncio.get_running_loop().create_task(self._renew(conversation_id, message_id, owner))
        self._renewers[(conversation_id, message_id)] = task

    async def _renew(self, conversation_id: str, message_id: str, owner: str) -> None:
        ttl = self._settings.lease_ttl
        while True:
            with contextlib.suppress(StateUnavailable):
                if not await self._state.renew(conversation_id, message_id, owner, ttl):
                    return
            await asyncio.sleep(ttl / 3)

    # -- answering ------------------------------------------------------------------------------------

    async def outcome(self, attempt: Attempt, wait: float) -> Outcome:
        """The JSON answer: the outcome, waiting at most ``wait`` seconds for a turn running elsewhere."""
        if attempt.outcome is not None:
            return attempt.outcome
        if attempt.task is not None:
            return await asyncio.shield(attempt.task)
        events: list[tuple[int | None, str, dict[str, Any]]] = []
        try:
            async with asyncio.timeout(wait):
                async for batch in self.events(attempt):
                    events.extend(batch)
        except TimeoutError:
            raise GatewayError(409, "turn_in_progress", "This message is still being answered. What to do: retry "
                               "with the same message id after Retry-After, or follow the conversation's events.",
                               retry_after=RETRY_SOON) from None
        if not events or events[-1][1] not in TERMINAL:  # the stream ended first: this worker is shutting down
            raise GatewayError(503, "shutting_down", "This gateway is shutting down. What to do: retry with the "
                               "same message id.", retry_after=1)
        return build_outcome(attempt.request.conversation_id, attempt.request.message_id, events)

    async def events(self, attempt: Attempt) -> AsyncIterator[list[tuple[int | None, str, dict[str, Any]]]]:
        """The message's turn's events from the log, each once, ending with its ``turn.end``/``turn.error``
        (the recorded outcome's, should the log no longer hold it). A turn running here is followed to
        its end even while the worker drains; one running elsewhere only until then. In batches, as they
        come."""
        request = attempt.request
        cid, mid = request.conversation_id, request.message_id
        check_every = max(0.2, self._settings.lease_ttl / 3)
        async for batch in follow(self._hub, self._state, cid, attempt.after, keepalive=check_every,
                                  until_drained=attempt.task is None):
            if batch is not None:
                mine: list[tuple[int | None, str, dict[str, Any]]] = [
                    (event.id, event.type, json.loads(event.data)) for event in batch if event.turn == mid]
                ended = any(kind in TERMINAL for _, kind, _ in mine)
                if ended:
                    mine = mine[:next(i for i, (_, kind, _) in enumerate(mine) if kind in TERMINAL) + 1]
                if mine:
                    yield mine
                if ended:
                    return
                continue
            # Quiet for a while: is the turn still running somewhere?
            final = await self._settled(attempt)
            if final is not None:
                yield [final]
                return

    async def _settled(self, attempt: Attempt) -> tuple[int | None, str, dict[str, Any]] | None:
        """The turn's last event when it ended without its event in the log (its append failed, or the
        log dropped it), or after taking over from a dead owner; ``None`` while it runs."""
        request = attempt.request
        cid, mid = request.conversation_id, request.message_id
        if attempt.task is not None:
            if not attempt.task.done():
                return None
            outcome = attempt.task.result()
        else:
            claim = await self._state.message(cid, mid)
            if claim is None:  # dropped: it ended without being sent, and its last event is gone
                failure = Failure("unavailable", "The message was not sent. What to do: send it again.", "not_sent")
                return None, "turn.error", turn_error(mid, failure)
            if claim.state == "running":
                return await self._take_over(request, claim)
            assert claim.outcome is not None
            outcome = Outcome.from_json(claim.outcome)
        body = outcome.body
        last_id = int(body["last_event_id"]) if body.get("last_event_id") else None
        if "error" in body:
            return last_id, "turn.error", {"message_id": mid, "error": body["error"]}
        return last_id, "turn.end", body["turn"]

    async def _take_over(self, request: TurnRequest, claim: MessageClaim
                         ) -> tuple[int | None, str, dict[str, Any]] | None:
        cid, mid = request.conversation_id, request.message_id
        owner = f"{self._origin}:{secrets.token_hex(6)}"
        if not await self._state.renew(cid, mid, claim.owner, self._settings.lease_ttl, take_over_as=owner):
            return None  # its owner is alive (or someone else took over): keep following
        logger.warning("message %s: the worker running it is gone; recording delivery unknown", mid,
                       extra={"conversationId": cid, "messageId": mid})
        failure = Failure("delivery_unknown", "The gateway that was handling this message stopped: the agent may "
                          "have received it. What to do: do not resend it blindly.", "maybe_delivered")
        data = turn_error(mid, failure)
        future = self._writer.publish(cid, "turn.error", data, mid, wait=True)
        assert future is not None
        last_id: int | None
        try:
            last_id = await future
        except StateUnavailable:
            last_id = None
        outcome = build_outcome(cid, mid, [(last_id, "turn.error", data)])
        await self._state.settle(cid, mid, owner, outcome.to_json())
        return last_id, "turn.error", data
