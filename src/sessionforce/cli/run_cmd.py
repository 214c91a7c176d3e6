"""``sessionforce run``: run scripted conversations from YAML suites, in parallel, and report like a test runner."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sessionforce.cli.common import PROFILE_HELP, STORE_HELP, err_console, open_target, out_console
from sessionforce.cli.errors import EXIT_CODES_HELP, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, CliError, guard

if TYPE_CHECKING:
    from sessionforce.cli.scenario import ConversationSpec, Suite
    from sessionforce.lifecycle import ConversationReply, Conversations

__all__ = ["Outcome", "register", "run", "write_junit"]


@dataclass
class Outcome:
    """How one scripted conversation went."""

    file: Path
    name: str
    turns: int
    passed_turns: int = 0
    failure: str | None = None
    """The first failing turn and the expectations it broke."""
    error: str | None = None
    """An error that stopped the conversation (the server failed, or could not be reached)."""
    unreachable: bool = False
    seconds: float = 0.0
    conversation_id: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``error``."""
        return "error" if self.error else "failed" if self.failure else "passed"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "conversation"


async def _run_one(conversations: Conversations, suite: Suite, spec: ConversationSpec, file: Path) -> Outcome:
    from sessionforce.errors import AuthError, NotFound, SessionforceError, SessionNotFound, TransportError

    outcome = Outcome(file, spec.name, len(spec.turns))
    outcome.conversation_id = f"run-{_slug(spec.name)}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    agent = spec.agent or suite.agent
    variables = [*suite.variables, *spec.variables]
    try:
        async with conversations.get(outcome.conversation_id, agent_id=agent, on_agent_end="restart",
                                     variables=variables) as conv:
            last: ConversationReply | None = None
            for number, turn in enumerate(spec.turns, 1):
                where = f"turn {number} ({turn.describe()})"
                if turn.answer is not None:
                    if last is None or last.question is None:
                        outcome.failure = f"{where}: the previous reply asked nothing to answer"
                        break
                    reply = await last.answer(turn.answer)
                else:
                    reply = await conv.send(turn.text)
                outcome.log.append(f"{where} -> [{', '.join(m.type for m in reply.messages)}] {reply.text}")
                from sessionforce.cli.scenario import check

                problems = check(turn.expect, reply)
                if problems:
                    outcome.failure = f"{where}: expected " + "; expected ".join(problems)
                    break
                outcome.passed_turns += 1
                last = reply
    except SessionforceError as exc:
        outcome.error = f"turn {outcome.passed_turns + 1}: {exc}"
        outcome.unreachable = isinstance(exc, AuthError | TransportError | NotFound) and not isinstance(
            exc, SessionNotFound)
    outcome.seconds = time.perf_counter() - started
    return outcome


async def _run_all(conversations: Conversations, suites: list[tuple[Path, Suite]], concurrency: int) -> list[Outcome]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    jobs = [(path, suite, spec) for path, suite in suites for spec in suite.conversations]
    gate = asyncio.Semaphore(concurrency)
    console = err_console()
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("conversations", total=len(jobs))

        async def one(path: Path, suite: Suite, spec: ConversationSpec) -> Outcome:
            async with gate:
                outcome = await _run_one(conversations, suite, spec, path)
            progress.advance(task)
            return outcome

        return list(await asyncio.gather(*(one(*job) for job in jobs)))


def write_junit(outcomes: list[Outcome], path: Path) -> None:
    """JUnit XML for CI: one ``testsuite`` per file, one ``testcase`` per conversation."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="sessionforce run", tests=str(len(outcomes)),
                      failures=str(sum(o.status == "failed" for o in outcomes)),
                      errors=str(sum(o.status == "error" for o in outcomes)),
                      time=f"{sum(o.seconds for o in outcomes):.3f}")
    by_file: dict[Path, list[Outcome]] = {}
    for outcome in outcomes:
        by_file.setdefault(outcome.file, []).append(outcome)
    for file, group in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=file.name, tests=str(len(group)),
                              failures=str(sum(o.status == "failed" for o in group)),
                              errors=str(sum(o.status == "error" for o in group)),
                              time=f"{sum(o.seconds for o in group):.3f}")
        for o in group:
            case = ET.SubElement(suite, "testcase", classname=file.stem, name=o.name, time=f"{o.seconds:.3f}")
            if o.failure:
                ET.SubElement(case, "failure", message=o.failure, type="ExpectationFailed").text = "\n".join(o.log)
            elif o.error:
                ET.SubElement(case, "error", message=o.error, type="Error").text = "\n".join(o.log)
            ET.SubElement(case, "system-out").text = f"conversation {o.conversation_id}\n" + "\n".join(o.log)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _summary(outcomes: list[Outcome], seconds: float) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out_console()
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("", "conversation", "file", "turns", "time", "detail"):
        table.add_column(column, overflow="fold")
    marks = {"passed": "[green]✓ pass[/green]", "failed": "[red]✗ FAIL[/red]", "error": "[red]! ERROR[/red]"}
    for o in outcomes:
        table.add_row(marks[o.status], escape(o.name), o.file.name, f"{o.passed_turns}/{o.turns}", f"{o.seconds:.2f}s",
                      escape(o.failure or o.error or ""))
    console.print(table)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("passed", "failed", "error")}
    style = "green" if counts["passed"] == len(outcomes) else "red"
    console.print(f"[{style}]{len(outcomes)} conversation(s): {counts['passed']} passed, {counts['failed']} failed, "
                  f"{counts['error']} error(s)[/{style}] in {seconds:.2f}s")


@guard
def run(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="YAML suite file(s).")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", min=1, max=500,
                                             help="Conversations run at the same time.")] = 4,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write JUnit XML here (for CI).")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Agent id for conversations that name none.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None,
    store: Annotated[str | None, typer.Option("--store", help=STORE_HELP)] = None,
    emulator_agents: Annotated[Path | None, typer.Option(
        "--emulator-agents", help="With no org configured: the built-in emulator runs these scripted agents "
        "(YAML, see docs/emulator.md) instead of the demo agent.")] = None,
) -> None:
    """Run scripted conversations from YAML and check every reply against expectations.

    Each conversation runs as its own conversation (its session is ended at the end). With no org
    configured they run against the built-in emulator. Exit 1 when any expectation fails, 2 for a bad
    suite file (naming the file and the place in it), 3 when the org cannot be reached. The format is
    in docs/cli.md.

    Examples:

      sessionforce run tests/agent/*.yaml

      sessionforce run smoke.yaml --profile staging --concurrency 16 --junit reports/agent.xml
    """
    from sessionforce.agent_api import AsyncAgentClient
    from sessionforce.cli.scenario import ScenarioError, load_suite
    from sessionforce.lifecycle import Conversations

    try:
        suites = [(path, load_suite(path)) for path in files]
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    with open_target(profile, agent=agent, store=store, announce=err_console(), what="running against",
                     emulator_agents=emulator_agents) as target:
        async def main() -> list[Outcome]:
            async with Conversations(AsyncAgentClient(settings=target.settings), store=target.store_url) as convs:
                try:
                    return await _run_all(convs, suites, concurrency)
                finally:
                    await convs.client.aclose()

        started = time.perf_counter()
        outcomes = asyncio.run(main())
    _summary(outcomes, time.perf_counter() - started)
    if junit is not None:
        write_junit(outcomes, junit)
        err_console().print(f"[dim]JUnit XML written to {junit}[/dim]")
    if any(o.unreachable for o in outcomes):
        raise typer.Exit(EXIT_UNREACHABLE)
    raise typer.Exit(EXIT_OK if all(o.status == "passed" for o in outcomes) else EXIT_FAILED)


run.__doc__ = (run.__doc__ or "") + "\n\n    " + EXIT_CODES_HELP


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run")(run)
