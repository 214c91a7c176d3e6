"""How replies and lifecycle events look in a terminal (Rich), and plainly when output is piped.

The agent's text streams in as it arrives; everything else a message carries is shown distinctly under it:
action results as a small key/value block, citations as numbered links, a hint when the agent waits for
an answer, escalation targets, failures. Lifecycle events are quiet dim lines starting with ``·``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.status import Status

    from sessionforce.agent_api import StreamEvent
    from sessionforce.agent_api._models import AgentMessage
    from sessionforce.agent_api._reply import Reply
    from sessionforce.lifecycle import ConversationEvent
    from sessionforce.store import ConversationRecord, TranscriptEntry

__all__ = ["Renderer", "short_id"]

AGENT = "[bold cyan]agent ›[/bold cyan] "
PLAIN_AGENT = "agent: "


def short_id(value: str | None, keep: int = 8) -> str:
    """The first characters of a long id (enough to tell sessions apart on screen)."""
    if not value:
        return "-"
    return value if len(value) <= keep + 1 else value[:keep] + "…"


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


class Renderer:
    """Writes one chat's output. ``rich=False`` (piped output): no spinner, no colours, one line per item."""

    def __init__(
        self, console: Console, *, rich: bool, resume: str = "none", errors: Console | None = None
    ) -> None:
        self.console = console
        # Piped output is data for a script: warnings and errors go to stderr, where scripts expect them
        # (on a terminal they stay in line with the chat, under the same spinner).
        self.errors = errors or (console if rich else Console(stderr=True, highlight=False, soft_wrap=True))
        self.rich = rich
        self.resume = resume
        """The chat's resume policy, to say what a replacement session knows."""
        self._streamed = ""
        self._status: Status | None = None
        self._session: str | None = None
        self._greeting: Any = None
        """The live session as the events told us (an agent-ended event no longer carries it)."""

    # ------------------------------------------------------------------ small lines

    def note(self, text: str) -> None:
        """A quiet status line (markup allowed)."""
        self.console.print(f"[dim]{text}[/dim]")

    def warn(self, text: str) -> None:
        """A warning line."""
        self.errors.print(f"[yellow]{escape(text)}[/yellow]")

    def error(self, text: str) -> None:
        """An error line (the chat goes on)."""
        self.errors.print(f"[bold red]error:[/bold red] {escape(text)}")

    def user(self, text: str) -> None:
        """Echo a user line (piped input is not echoed by a terminal)."""
        if not self.rich:
            self.console.print(f"you: {escape(text)}")

    # ------------------------------------------------------------------ a turn

    def begin_turn(self) -> None:
        """A turn was sent: show a spinner until the first piece of the reply arrives."""
        self._streamed = ""
        if self.rich:
            self._status = self.console.status("[dim]waiting for the agent…[/dim]", spinner="dots")
            self._status.start()

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def end_turn(self) -> None:
        """The turn is over (answered, failed or cancelled): close any half-printed line."""
        self._stop_spinner()
        if self._streamed:
            self.console.print()
            self._streamed = ""

    def stream_event(self, event: StreamEvent) -> None:
        """Show one streamed event: text chunks as they come, complete messages as blocks."""
        from sessionforce.agent_api import MessageEvent, ProgressEvent, TextChunkEvent, ValidationFailureEvent

        if isinstance(event, ProgressEvent):
            if self._status is not None and event.message:
                self._status.update(f"[dim]{escape(event.message)}…[/dim]")
            return
        self._stop_spinner()
        if isinstance(event, TextChunkEvent):
            if not self._streamed:
                self.console.print(AGENT if self.rich else PLAIN_AGENT, end="")
            self.console.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
            self._streamed += event.text
        elif isinstance(event, ValidationFailureEvent):
            if self._streamed:
                self.console.print()
                self._streamed = ""
            self.note("(the agent revised its reply)")
        elif isinstance(event, MessageEvent):
            self.message(event.message)

    def reply(self, reply: Reply) -> None:
        """Show a whole reply (the greeting, or a turn without streaming)."""
        self._stop_spinner()
        for message in reply.messages:
            self.message(message)
        self.end_turn()

    # ------------------------------------------------------------------ messages

    def message(self, message: AgentMessage) -> None:
        """Show one complete agent message with everything it carries."""
        from sessionforce.agent_api import _models as m

        text = (message.message or "").strip()
        streamed, self._streamed = self._streamed.strip(), ""
        if streamed and text == streamed:
            self.console.print()  # the text is on screen already: just end its line
        else:
            if streamed:
                self.console.print()
            if text:
                self.console.print((AGENT if self.rich else PLAIN_AGENT) + escape(text))
        if isinstance(message, m.InformMessage):
            for item in message.result:
                self._action(item)
            for number, citation in enumerate(message.cited_references, 1):
                self._citation(number, citation)
        elif isinstance(message, m.InquireMessage):
            collect = message.collect if isinstance(message.collect, dict) else {}
            what = collect.get("name")
            kind = f" ({collect['type']})" if collect.get("type") else ""
            asked = f"for {what}{kind}" if what else "a question"
            self.note(f"  ↳ the agent asks {escape(asked)}: your next line answers it")
        elif isinstance(message, m.ConfirmMessage):
            self.note("  ↳ answer yes/no: your next line is sent as the answer")
        elif isinstance(message, m.EscalateMessage):
            targets = ", ".join(f"{t.type or '?'} {t.value or ''}".strip() for t in message.targets) or "a person"
            self.console.print(f"  [bold yellow]⇄ escalated[/bold yellow] to {escape(targets)}")
        elif isinstance(message, m.FailureMessage):
            detail = "; ".join(_compact(e) for e in message.errors) or "no detail"
            code = f" [{message.code}]" if message.code else ""
            self.console.print(f"  [bold red]✗ action failed{escape(code)}:[/bold red] {escape(detail)}")
        elif isinstance(message, m.SessionEndedMessage):
            pass  # the lifecycle line ("· session ended by the agent") says it
        elif not isinstance(message, m.InformMessage):
            self.note(f"  [{escape(message.type)} message]")

    def _action(self, item: Any) -> None:
        name = item.get("name") if isinstance(item, dict) else None
        value = item.get("value", item) if isinstance(item, dict) and name else item
        self.console.print(f"  [bold green]⚙ {escape(str(name or 'action result'))}[/bold green]")
        if isinstance(value, dict) and value and all(not isinstance(v, dict | list) for v in value.values()):
            width = max(len(str(k)) for k in value)
            for key, val in value.items():
                self.console.print(f"    [dim]{escape(str(key)).ljust(width)}[/dim]  {escape(str(val))}")
        else:
            self.console.print("    " + escape(_compact(value)), soft_wrap=True)

    def _citation(self, number: int, citation: Any) -> None:
        claims = [f"“{c.claim}”" + (f" ({c.location})" if c.location else "")
                  for c in citation.inline_metadata if c.claim]
        where = citation.value or "?"
        extra = f" — {'; '.join(claims)}" if claims else ""
        self.console.print(f"  [blue][{number}][/blue] [link={escape(where)}]{escape(where)}[/link]{escape(extra)}")

    # ------------------------------------------------------------------ lifecycle events

    def event(self, event: ConversationEvent) -> None:
        """A conversation hook: quiet lines for sessions starting, expiring, resuming and ending."""
        from sessionforce.lifecycle import EventKind

        d = event.detail
        line: str | None = None
        if event.kind in (EventKind.SESSION_STARTED, EventKind.RESUMED):
            self._session = event.session_id
        greeting = None
        if event.kind is EventKind.SESSION_STARTED:
            # Every new session's greeting, whether start() or a turn (resume, restart) opened it; after a
            # resume it waits for the "resumed" line so the screen reads in order.
            self._greeting = d.get("greeting")
            if not d.get("resume_reason"):
                line = f"· session {short_id(event.session_id)} started"
                greeting, self._greeting = self._greeting, None
        elif event.kind is EventKind.RESUMED:
            why = {"expired": "the last one expired", "idle": "the last one was idle too long",
                   "agent_ended": "the agent ended the last one", "ended": "the last one was ended"}
            reason = str(d.get("reason"))
            knows = ("the last turns were replayed to it" if self.resume == "replay"
                     else "the agent does not remember earlier turns")
            line = f"· resumed on new session {short_id(event.session_id)} ({why.get(reason, reason)}; {knows})"
            if reason in ("expired", "idle"):
                # Mid-conversation, a fresh "Hi, how can I help?" reads as the answer to the user's turn: the
                # greeting stays in the transcript, the screen goes on with the reply.
                self._greeting = None
            greeting, self._greeting = self._greeting, None
        elif event.kind is EventKind.ENDED:
            sid = short_id(d.get("session_id") or event.session_id or self._session)
            if d.get("reason") == "Expired":
                line = f"· session {sid} expired"
            elif d.get("already_gone"):
                line = f"· session {sid} had already expired or ended on the server: nothing to end"
            elif d.get("by") == "agent":
                line = f"· the agent ended session {sid} ({d.get('reason') or 'no reason'})"
            else:
                line = f"· session {sid} ended ({d.get('reason')})"
        elif event.kind is EventKind.DELIVERY_UNKNOWN:
            if d.get("owner") is None:
                return  # this chat's own turn: the chat reports it once, in its own words
            self._stop_spinner()
            self.end_turn()
            self.warn(f"· turn {event.sequence_id}, sent by {d.get('owner')}, was interrupted: delivery unknown")
            return
        if line is not None:
            self._stop_spinner()
            if self._streamed:
                self.console.print()
                self._streamed = ""
            self.note(escape(line))
        from sessionforce.agent_api import Reply as ReplyType

        if isinstance(greeting, ReplyType) and greeting.messages:
            for message in greeting.messages:
                self.message(message)

    # ------------------------------------------------------------------ /info and /transcript

    def info(self, record: ConversationRecord | None, conversation_id: str, target: str, store: str) -> None:
        """The keys, ids and counters of the conversation (``/info``)."""
        rows: list[tuple[str, str]] = [("conversation", conversation_id), ("target", target), ("store", store)]
        if record is not None:
            current = record.current_session()
            idle = time.time() - record.last_activity_at
            rows += [
                ("agent", record.agent_id),
                ("session", record.session_id or "none (the next turn starts one)"),
                ("external key", current.external_session_key if current else record.external_session_key),
                ("last sequenceId", str(record.last_sequence_id)),
                ("turns", str(record.turns)),
                ("sessions so far", str(len(record.sessions))),
                ("idle for", f"{idle:.0f} s"),
            ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            self.console.print(f"  [dim]{key.ljust(width)}[/dim]  {escape(value)}")

    def transcript(self, entries: list[TranscriptEntry]) -> None:
        """The stored transcript, one line per entry (``/transcript``)."""
        if not entries:
            self.note("(the transcript is empty)")
        last = 0
        for entry in entries:
            seq = entry.sequence_id or 0
            if seq > last + 1:
                skipped = f"#{last + 1}" if seq == last + 2 else f"#{last + 1}–#{seq - 1}"
                self.note(f"  {skipped}: refused (404) by a session that had expired; not delivered, so the turn "
                          "was sent again on the new session")
            last = max(last, seq)
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.at))
            head = f"  [dim]{stamp} #{entry.sequence_id or '-':<3}[/dim] "
            if entry.kind == "turn":
                said = " / ".join(str(m.get("message")) for m in entry.reply or [] if m.get("message"))
                types = ",".join(str(m.get("type")) for m in entry.reply or [])
                self.console.print(head + f"you: {escape(entry.text or '')}")
                self.console.print(f"  {'':13}agent: {escape(said)} [dim]({types})[/dim]")
            else:
                shown = ("state", "reason", "resume_reason", "error", "cause")
                detail = ", ".join(f"{k}={entry.detail[k]}" for k in shown if entry.detail.get(k) is not None)
                self.console.print(head + f"[dim]{escape(entry.kind)} {short_id(entry.session_id)} "
                                   f"{escape(detail)}[/dim]")
