"""Where the chat's lines come from: a prompt with history on a terminal, or stdin line by line when piped.

Also what keeps the terminal tidy while a reply is on its way: keys typed then are not echoed into the
spinner or the reply, and stay in the terminal's buffer for the next prompt (type-ahead).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession

__all__ = ["InputError", "PipedLines", "history_path", "no_echo", "prompt_session"]


class InputError(Exception):
    """A piped line that cannot be a message (not UTF-8 text); the chat ends with exit code 2."""


class PipedLines:
    """Lines of a piped stdin, read on a daemon thread (a read blocked on stdin must not hold up the exit).

    Bytes are decoded strictly: a line that is not UTF-8 is reported, never sent altered.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | InputError | None] = asyncio.Queue()

    def start(self) -> None:
        """Start reading (call on the running loop)."""
        loop = asyncio.get_running_loop()
        stream = sys.stdin.buffer

        def read() -> None:
            for number, raw in enumerate(stream, 1):
                try:
                    item: str | InputError = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    item = InputError(f"line {number} of the input is not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                                      f"at position {exc.start + 1}); it was not sent. What to do: convert the "
                                      "input to UTF-8 (e.g. with iconv).")
                    loop.call_soon_threadsafe(self._queue.put_nowait, item)
                    return
                loop.call_soon_threadsafe(self._queue.put_nowait, item)
            loop.call_soon_threadsafe(self._queue.put_nowait, None)

        threading.Thread(target=read, name="sessionforce-stdin", daemon=True).start()

    async def next(self) -> str | None:
        """The next line, or ``None`` at end of input; raises :class:`InputError` for a line not UTF-8."""
        item = await self._queue.get()
        if isinstance(item, InputError):
            raise item
        return item


def history_path() -> Path:
    """The chat history file (in the user's state directory)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("sessionforce", appauthor=False)) / "chat_history"


def prompt_session() -> PromptSession[str]:
    """A prompt with line editing and a history file readable by the user only (it holds what was typed)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = history_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created (or narrowed) before prompt_toolkit appends to it: it would create it world-readable.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(path, 0o600)
        return PromptSession(history=FileHistory(str(path)))
    except OSError:
        return PromptSession(history=InMemoryHistory())


@contextlib.contextmanager
def no_echo() -> Iterator[None]:
    """While a reply is on its way: keys typed are not echoed (they would land in the spinner or the
    reply) and stay buffered for the next prompt. Ctrl-C still interrupts. A no-op off a terminal."""
    try:
        import termios
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = sys.stdin.fileno()
        before = termios.tcgetattr(fd)
    except (OSError, ValueError, AttributeError, termios.error):
        yield
        return
    quiet = list(before)
    quiet[3] = quiet[3] & ~(termios.ECHO | termios.ECHOCTL)
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:  # pragma: no cover - a terminal that refuses
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, before)
