"""``sessionforce chat``: talk to an agent (or the built-in emulator) in the terminal.

One conversation (``chat-<uuid>``, or ``--conversation ID`` to carry a detached one on) served by as
many sessions as it takes: expiries are resumed, and ``/end`` or the agent ending the session starts a
fresh one. Ctrl-C during a reply cancels that turn; Ctrl-C at the prompt or Ctrl-D ends the session and
exits 0. With stdin not a terminal, each line is one turn and output is plain, so it is scriptable.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import uuid
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from sessionforce.cli.common import PROFILE_HELP, STORE_HELP, Target, err_console, open_target, out_console
from sessionforce.cli.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, guard, message_for

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

    from sessionforce.cli.render import Renderer
    from sessionforce.lifecycle import Conversation, ConversationReply

__all__ = ["chat", "register"]

HELP_TEXT = """\
  /help                      this list
  /end                       end the server session; keep chatting in a new one
  /feedback good|bad [text]  rate the agent's last reply
  /transcript                the conversation so far, from the store
  /info                      keys, ids, sequenceId, idle time
  /expire                    (emulator only) expire the session now, to watch the next turn resume
  /quit                      end the session and leave (also Ctrl-D, or Ctrl-C at the prompt)"""


class _Quit(Exception):
    """The user asked to leave."""


class ChatLoop:
    """One interactive (or piped) chat over one conversation."""

    def __init__(self, target: Target, renderer: Renderer, conversation_id: str, *, stream: bool,
                 interactive: bool) -> None:
        self.target = target
        self.renderer = renderer
        self.conversation_id = conversation_id
        self.stream = stream
        self.interactive = interactive
        self.conv: Conversation | None = None
        self.question: ConversationReply | None = None
        """The last reply, when it asked something: the next line answers it."""
        self.rated: ConversationReply | None = None
        """The last reply with a feedback id: what /feedback rates."""
        self._turn_task: asyncio.Task[None] | None = None
        self._main_task: asyncio.Task[object] | None = None
        self._interrupted = False
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._prompt: PromptSession[str] | None = None

    # ------------------------------------------------------------------ input

    def _start_reader(self) -> None:
        # A daemon thread (not asyncio.to_thread): a read blocked on stdin must not hold up the exit.
        loop = asyncio.get_running_loop()

        def read() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\r\n"))
            loop.call_soon_threadsafe(self._lines.put_nowait, None)

        threading.Thread(target=read, name="sessionforce-stdin", daemon=True).start()

    async def _read_line(self) -> str | None:
        """The next line, or ``None`` at end of input (Ctrl-D)."""
        if not self.interactive:
            return await self._lines.get()
        if self._prompt is None:
            self._prompt = _prompt_session()
        from prompt_toolkit.formatted_text import HTML

        label = "answer ›" if self.question is not None else "you ›"
        try:
            # handle_sigint=False: prompt_toolkit would otherwise remove *every* SIGINT handler of the loop
            # when the prompt returns, ours included, and Ctrl-C during a reply would no longer cancel it.
            # At the prompt the terminal is raw, so Ctrl-C still arrives as a key (KeyboardInterrupt below).
            return await self._prompt.prompt_async(
                HTML(f"<ansicyan><b>{label}</b></ansicyan> "), handle_sigint=False
            )
        except EOFError:
            return None
        except KeyboardInterrupt:
            raise _Quit from None

    # ------------------------------------------------------------------ the loop

    async def run(self) -> int:
        """Chat until end of input or /quit; the session is always ended. Returns the exit code."""
        from sessionforce.agent_api import AsyncAgentClient
        from sessionforce.lifecycle import Conversations

        self._main_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        if not self.interactive:
            self._start_reader()
        try:
            client = AsyncAgentClient(settings=self.target.settings)
            async with client, Conversations(client, store=self.target.store_url) as conversations:
                self.conv = conversations.get(self.conversation_id, on_agent_end="restart",
                                              hooks=[("*", self.renderer.event)])
                try:
                    await self._chat()
                except (asyncio.CancelledError, _Quit):
                    pass
                finally:
                    await self._close()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        return EXIT_INTERRUPTED if self._interrupted and not self.interactive else 0

    def _on_sigint(self) -> None:
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()  # Ctrl-C during a reply: cancel that turn only
        elif self._main_task is not None:
            self._interrupted = True
            self._main_task.cancel()

    async def _chat(self) -> None:
        assert self.conv is not None
        greeting = await self.conv.start()  # a new session's greeting is shown by the session_started event
        if greeting is None:
            record = await self.conv.record()
            session = record.session_id if record else None
            self.renderer.note(f"· continuing conversation {self.conversation_id} on session {session}")
        if self.interactive:
            self.renderer.note("Type a message, or /help. Ctrl-D ends the session.")
        while True:
            line = await self._read_line()
            if line is None:
                return
            text = line.strip()
            if not text:
                continue
            self.renderer.user(text)
            if text.startswith("/"):
                await self._command(text)
            else:
                await self._guarded(self._turn(text))

    async def _guarded(self, work: object) -> None:
        """Run one turn or command as a task Ctrl-C can cancel; errors are shown and the chat goes on."""
        from sessionforce.errors import SessionforceError

        assert asyncio.iscoroutine(work)
        self._turn_task = asyncio.ensure_future(work)
        try:
            await self._turn_task
        except asyncio.CancelledError:
            if not self._turn_task.cancelled():
                raise  # the chat itself is being cancelled
            self.renderer.end_turn()
            self.renderer.warn("· turn cancelled (it may have reached the agent; it is recorded as delivery unknown)")
        except SessionforceError as exc:
            self.renderer.end_turn()
            self.renderer.error(message_for(exc).removeprefix("error: "))
        finally:
            self._turn_task = None

    async def _turn(self, text: str) -> None:
        assert self.conv is not None
        question, self.question = self.question, None
        kind: Literal["Text", "Reply"] = "Reply" if question is not None else "Text"
        in_reply_to = question.question_id() if question is not None else None
        self.renderer.begin_turn()
        try:
            if self.stream:
                async with self.conv.stream(text, message_type=kind, in_reply_to=in_reply_to) as events:
                    async for event in events:
                        self.renderer.stream_event(event)
                reply = events.reply
            else:
                reply = await self.conv.send(text, message_type=kind, in_reply_to=in_reply_to)
                self.renderer.reply(reply)
        finally:
            self.renderer.end_turn()
        if reply is None:
            return
        if reply.question is not None:
            self.question = reply
        if reply.feedback_id:
            self.rated = reply

    # ------------------------------------------------------------------ slash commands

    async def _command(self, text: str) -> None:
        assert self.conv is not None
        name, _, rest = text.partition(" ")
        name = name.lower()
        if name in ("/quit", "/exit", "/q"):
            raise _Quit
        if name == "/help":
            self.renderer.console.print(HELP_TEXT, markup=False, highlight=False)
        elif name == "/end":
            await self._guarded(self._end_and_restart())
        elif name == "/feedback":
            await self._guarded(self._feedback(rest.strip()))
        elif name == "/transcript":
            self.renderer.transcript(await self.conv.transcript())
        elif name == "/info":
            store = self.target.store_url or _default_store_url()
            self.renderer.info(await self.conv.record(), self.conversation_id, self.target.describe(), store)
        elif name == "/expire":
            await self._guarded(self._expire())
        else:
            self.renderer.warn(f"unknown command {name}: try /help")

    async def _end_and_restart(self) -> None:
        assert self.conv is not None
        self.question = None
        if not await self.conv.end():
            self.renderer.note("· no live session to end")
        await self.conv.start()  # its greeting is shown by the session_started event

    async def _feedback(self, args: str) -> None:
        assert self.conv is not None
        verdict, _, comment = args.partition(" ")
        value: Literal["GOOD", "BAD"]
        if verdict.lower() in ("good", "+", "up"):
            value = "GOOD"
        elif verdict.lower() in ("bad", "-", "down"):
            value = "BAD"
        else:
            self.renderer.warn("usage: /feedback good|bad [comment]")
            return
        if self.rated is None:
            self.renderer.warn("no reply to rate yet (replies that ask a question carry no feedback id)")
            return
        await self.conv.feedback(self.rated, value, text=comment.strip() or None)
        self.renderer.note(f"· feedback {value} sent on the last reply")

    async def _expire(self) -> None:
        assert self.conv is not None
        admin = self.target.admin_url
        if admin is None:
            self.renderer.warn("/expire works only against the emulator (a real org expires sessions by itself)")
            return
        record = await self.conv.record()
        session_id = record.session_id if record else None
        if session_id is None:
            self.renderer.note("· no live session to expire")
            return
        import aiohttp

        async with aiohttp.ClientSession() as http, http.post(f"{admin}/sessions/{session_id}/expire") as response:
            if response.status != 200:
                self.renderer.warn(f"the emulator refused to expire session {session_id} (HTTP {response.status})")
                return
        self.renderer.note(f"· asked the emulator to expire session {session_id[:8]}…; the next turn will resume")

    async def _close(self) -> None:
        """End the live session, whatever happened. Shielded, so a second Ctrl-C cannot skip it."""
        from sessionforce.errors import SessionforceError

        if self.conv is None:
            return
        task = asyncio.ensure_future(self.conv.end())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        except SessionforceError as exc:
            self.renderer.error(f"could not end the session: {message_for(exc).removeprefix('error: ')}")


def _default_store_url() -> str:
    import os

    from sessionforce.store import default_sqlite_path

    return os.environ.get("SESSIONFORCE_STORE") or f"sqlite:///{default_sqlite_path()}"


def _prompt_session() -> PromptSession[str]:
    from pathlib import Path

    import platformdirs
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = Path(platformdirs.user_state_dir("sessionforce", appauthor=False)) / "chat_history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return PromptSession(history=FileHistory(str(path)))
    except OSError:
        return PromptSession(history=InMemoryHistory())


@guard
def chat(
    agent: Annotated[str | None, typer.Option("--agent", help="Agent id (default: SF_AGENT_ID or the profile's).")
                     ] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Wait for whole replies instead of streaming.")
                         ] = False,
    conversation: Annotated[str | None, typer.Option(
        "--conversation", "-c", help="Carry on a stored conversation by id (default: a new chat-<uuid>).")] = None,
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
) -> None:
    """Chat with an agent. With no org configured, chats with the built-in emulator's demo agent.

    Replies stream in as they arrive; action results, citations, questions and escalations are shown
    distinctly, session lifecycle quietly. Type /help in the chat for its commands. Piped stdin: one
    turn per line, plain output.

    Examples:

      sessionforce chat

      sessionforce chat --profile prod --agent 0XxRM0000000001

      printf 'hours?\\nbook a repair\\n2026-12-01\\nyes\\n' | sessionforce chat
    """
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    from sessionforce.cli.render import Renderer

    renderer = Renderer(out_console(), rich=interactive)
    conversation_id = conversation or f"chat-{uuid.uuid4()}"
    with open_target(profile, agent=agent, store=store, announce=err_console()) as target:
        code = asyncio.run(ChatLoop(target, renderer, conversation_id, stream=not no_stream,
                                    interactive=interactive).run())
    raise typer.Exit(code)


chat.__doc__ = (chat.__doc__ or "") + "\n\n    " + EXIT_CODES_HELP


def register(app: typer.Typer) -> None:
    """Add the ``chat`` command to ``app``."""
    app.command("chat")(chat)
