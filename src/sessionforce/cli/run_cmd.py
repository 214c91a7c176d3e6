"""``sessionforce run``: run scripted conversations from YAML suites, in parallel, and report like a test runner."""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sessionforce.cli.common import PROFILE_HELP, err_console, open_target, out_console, prepare_output
from sessionforce.cli.errors import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    guard,
)

if TYPE_CHECKING:
    from sessionforce.cli.scenario import ConversationSpec, Suite
    from sessionforce.lifecycle import ConversationReply, Conversations

__all__ = ["Outcome", "exit_code", "register", "run", "write_junit"]


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
    exit_code: int = EXIT_OK
    """What the error means for the exit code (bad input 2, unreachable 3, other 1); 0 without one."""
    seconds: float = 0.0
    conversation_id: str = ""
    transcript: Path | None = None
    """Where ``--output-dir`` wrote its transcript."""
    log: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``error``."""
        return "error" if self.error else "failed" if self.failure else "passed"

    def to_dict(self) -> dict[str, object]:
        """The outcome as ``run --json`` prints it."""
        return {"file": str(self.file), "name": self.name, "status": self.status, "turns": self.turns,
                "passed_turns": self.passed_turns, "seconds": round(self.seconds, 3), "failure": self.failure,
                "error": self.error, "conversation_id": self.conversation_id,
                "transcript": str(self.transcript) if self.transcript else None, "log": self.log}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "conversation"


async def _run_one(conversations: Conversations, suite: Suite, spec: ConversationSpec, file: Path,
                   output_dir: Path | None) -> Outcome:
    from sessionforce.cli.errors import exit_code_for
    from sessionforce.cli.scenario import check
    from sessionforce.errors import SessionforceError

    outcome = Outcome(file, spec.name, len(spec.turns))
    outcome.conversation_id = f"run-{_slug(spec.name)}-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    agent = spec.agent or suite.agent
    variables = [*suite.variables, *spec.variables]
    conv = conversations.get(outcome.conversation_id, agent_id=agent, on_agent_end="restart", variables=variables)
    try:
        async with conv:
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
                problems = check(turn.expect, reply)
                if problems:
                    outcome.failure = f"{where}: expected " + "; expected ".join(problems)
                    break
                outcome.passed_turns += 1
                last = reply
    except SessionforceError as exc:
        outcome.error = f"turn {outcome.passed_turns + 1}: {exc}"
        outcome.exit_code = exit_code_for(exc)
    outcome.seconds = time.perf_counter() - started
    if output_dir is not None:
        outcome.transcript = output_dir / f"{outcome.conversation_id}.jsonl"
        await conv.export_jsonl(outcome.transcript)
    return outcome


async def _run_all(conversations: Conversations, suites: list[tuple[Path, Suite]], concurrency: int,
                   output_dir: Path | None) -> list[Outcome]:
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
                outcome = await _run_one(conversations, suite, spec, path, output_dir)
            progress.advance(task)
            return outcome

        return list(await asyncio.gather(*(one(*job) for job in jobs)))


def exit_code(outcomes: list[Outcome]) -> int:
    """The run's exit code: the first that applies of bad input (2), unreachable (3), any failure (1)."""
    codes = {o.exit_code for o in outcomes}
    for code in (EXIT_USAGE, EXIT_UNREACHABLE):
        if code in codes:
            return code
    return EXIT_OK if all(o.status == "passed" for o in outcomes) else EXIT_FAILED


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
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="Also write JUnit XML here, for CI (missing folders are created).")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", "-d", help="Write each conversation's transcript here as <conversation id>.jsonl "
        "(missing folders are created).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of a table.")] = False,
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Agent id or API name for conversations that name none.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help=PROFILE_HELP)] = None,
    store: Annotated[str | None, typer.Option("--store", help=(
        "Keep the conversations in this store (sqlite:///path.db, redis://...). Default: memory, so a run "
        "leaves nothing behind; --output-dir keeps the transcripts."))] = None,
    emulator_agents: Annotated[Path | None, typer.Option(
        "--emulator-agents", help="With no org configured: the built-in emulator runs these scripted agents "
        "(YAML, see the emulator docs) instead of the demo agent.")] = None,
) -> None:
    """Run scripted conversations from YAML and check every reply against expectations.

    Each conversation runs as its own conversation (its session is ended at the end). With no org
    configured they run against the built-in emulator. Exit 1 when any expectation fails, 2 for a bad
    suite file (naming the file and the place in it) or an unknown agent, 3 when the org cannot be
    reached. The format: `sessionforce run --help` and the CLI guide (docs/cli.md in the source).

    Examples:

      sessionforce run tests/agent/*.yaml

      sessionforce run smoke.yaml --profile staging --concurrency 16 --junit reports/agent.xml

      sessionforce run smoke.yaml --output-dir transcripts/ --json
    """
    from sessionforce.agent_api import AsyncAgentClient
    from sessionforce.cli.scenario import ScenarioError, load_suite
    from sessionforce.lifecycle import Conversations

    try:
        suites = [(path, load_suite(path)) for path in files]
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    # Every output is checked before the first turn: a typo must not cost a whole run.
    if junit is not None:
        prepare_output(junit, "JUnit XML")
    if output_dir is not None:
        prepare_output(output_dir / "x.jsonl", "transcripts")
    with open_target(profile, agent=agent, store=store or "memory://", announce=err_console(),
                     what="running against", emulator_agents=emulator_agents) as target:
        async def main() -> list[Outcome]:
            the_store = target.open_store()
            try:
                client = AsyncAgentClient(settings=target.settings)
                async with client, Conversations(client, store=the_store) as conversations:
                    return await _run_all(conversations, suites, concurrency, output_dir)
            finally:
                await the_store.aclose()

        started = time.perf_counter()
        outcomes = asyncio.run(main())
    seconds = time.perf_counter() - started
    code = exit_code(outcomes)
    if as_json:
        import json

        print(json.dumps({"passed": sum(o.status == "passed" for o in outcomes),
                          "failed": sum(o.status == "failed" for o in outcomes),
                          "errors": sum(o.status == "error" for o in outcomes), "seconds": round(seconds, 3),
                          "exit_code": code, "conversations": [o.to_dict() for o in outcomes]}, indent=2))
    else:
        _summary(outcomes, seconds)
    if junit is not None:
        write_junit(outcomes, junit)
        err_console().print(f"[dim]JUnit XML written to {junit}[/dim]")
    if output_dir is not None:
        err_console().print(f"[dim]{len(outcomes)} transcript(s) written to {output_dir}[/dim]")
    stopped = [o for o in outcomes if o.exit_code == code and code in (EXIT_USAGE, EXIT_UNREACHABLE)]
    if stopped:
        # One line on stderr for what stopped the run, as every command does (the table has every detail).
        more = f" ({len(stopped)} conversations stopped this way)" if len(stopped) > 1 else ""
        print(f"error: {stopped[0].name}: {stopped[0].error}{more}", file=sys.stderr)
    raise typer.Exit(code)


run.__doc__ = (run.__doc__ or "") + "\n\n    " + EXIT_CODES_HELP


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to ``app``."""
    app.command("run")(run)
