"""Every code block a user would copy from README.md and docs/*.md runs as written.

Blocks are found with markdown-it (the parser Rich already brings). Each runs the way a user would run it:

- ``python``: as a script in a subprocess (``python example.py``); a block that defines ``test_`` functions
  is a test file and runs under pytest, as the user's would.
- ``bash``, ``sh``, ``shell``: the whole block as one bash script; ``console``: each ``$ `` line as a
  command. ``sessionforce`` and ``.venv/bin/...`` are this environment's installed ones.
- ``yaml``: given to what reads it: a suite (``conversations:``) to ``sessionforce run``, an agents file
  (``agents:``) and a faults file (``rules:``) to the emulator.
- ``toml``: a config file, to ``sessionforce config show`` (the config loader, and its validation).

Blocks run in a working folder per document, with a home folder of their own and no environment beyond
``PATH`` and those home folders, plus exactly what a mark before the block names. Marks are HTML
comments on the lines just before a block, invisible on GitHub:

- ``<!-- not-run: why -->``: not run (e.g. it installs packages); the reason is printed as a skip.
- ``<!-- env: SF_MY_DOMAIN SF_CLIENT_ID SF_CLIENT_SECRET SF_AGENT_ID -->``: these variables are set, as the
  docs tell the user to, to a standalone emulator's values (its banner lists them).
- ``<!-- file: NAME -->``: the block is also saved as NAME in the document's folder, for later blocks.
- ``<!-- exit: N -->``: the command(s) must exit N (default 0).

``text`` blocks (terminal sessions, output) and blocks with no language (diagrams) are not code to copy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from sessionforce.emulator import RunningEmulator, run_emulator

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
RUNNABLE = {"python", "bash", "sh", "shell", "console", "yaml", "toml"}
"""Languages of code a user copies: each such block runs, or says in a mark why not."""
NOT_CODE = {"text", ""}
ORG_ENV = ("SF_MY_DOMAIN", "SF_CLIENT_ID", "SF_CLIENT_SECRET", "SF_AGENT_ID")
MARK = re.compile(r"<!--\s*([a-z-]+):\s*(.*?)\s*-->", re.DOTALL)
TIMEOUT = 60


@dataclass
class Block:
    """One fenced code block and the marks just before it."""

    doc: Path
    line: int
    lang: str
    code: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``docs/cli.md:142``: where to find it."""
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def expected_exit(self) -> int:
        """The exit code its commands must have."""
        return int(self.marks.get("exit", "0"))


def blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of ``doc``, in order, each with the marks of the HTML comments before it."""
    found: list[Block] = []
    marks: dict[str, str] = {}
    for token in MarkdownIt("commonmark").parse(doc.read_text(encoding="utf-8")):
        if token.type == "html_block":
            marks.update(MARK.findall(token.content))
            continue
        if token.type == "fence":
            assert token.map is not None
            lang = token.info.split()[0] if token.info.strip() else ""
            found.append(Block(doc, token.map[0] + 1, lang, token.content, marks))
        if token.nesting >= 0 or token.type == "fence":
            marks = {}  # a mark belongs to the block right after it, nothing further down
    return found


ALL = [b for doc in DOCS for b in blocks(doc) if b.lang not in NOT_CODE]


@pytest.fixture(scope="module")
def standalone() -> Iterator[RunningEmulator]:
    """The emulator a user would start with `sessionforce emulator`, shared by the blocks that need an org."""
    with run_emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """One working folder per document (later blocks see the files earlier ones saved)."""
    return {}


def _folder(block: Block, folders: dict[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = folders.get(block.doc)
    if cwd is None:
        cwd = folders[block.doc] = tmp_path_factory.mktemp(block.doc.stem)
        (cwd / ".venv").symlink_to(sys.prefix)  # `.venv/bin/sessionforce`, as the README installs it
        (cwd / "home").mkdir()
    # Every `file:` block of the document up to this one, so one block can also run on its own (-k).
    for earlier in blocks(block.doc):
        if earlier.line <= block.line and "file" in earlier.marks:
            (cwd / earlier.marks["file"]).write_text(earlier.code, encoding="utf-8")
    return cwd


def _env(block: Block, cwd: Path, emu: RunningEmulator) -> dict[str, str]:
    home = cwd / "home"
    env = {"PATH": f"{BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local/share"),
           "XDG_STATE_HOME": str(home / ".local/state"), "XDG_CACHE_HOME": str(home / ".cache"),
           "LANG": "C.UTF-8", "TERM": "dumb"}
    given = {"SF_MY_DOMAIN": emu.url, "SF_CLIENT_ID": emu.client_id, "SF_CLIENT_SECRET": emu.client_secret,
             "SF_AGENT_ID": emu.default_agent_id}
    for name in block.marks.get("env", "").split():
        assert name in given, f"{block.name}: the docs test knows no value for {name}"
        env[name] = given[name]
    return env


def _run(block: Block, argv: list[str], cwd: Path, env: dict[str, str], *, shown: str) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == block.expected_exit, (
        f"{block.name}: `{shown}` exited {done.returncode}, not {block.expected_exit}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")


def _console_commands(code: str) -> list[str]:
    """The ``$ `` commands of a console block (a trailing ``\\`` continues one on the next line)."""
    commands: list[str] = []
    lines = iter(code.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue  # output
        command = line[2:]
        while command.endswith("\\"):
            command = command[:-1] + next(lines, "")
        commands.append(command)
    return commands


def _yaml(block: Block, cwd: Path, env: dict[str, str]) -> None:
    data = yaml.safe_load(block.code)
    path = cwd / block.marks.get("file", f"block-{block.line}.yaml")
    path.write_text(block.code, encoding="utf-8")
    assert isinstance(data, dict), f"{block.name}: a YAML sample is a mapping"
    if "conversations" in data:
        _run(block, [str(BIN / "sessionforce"), "run", str(path)], cwd, env, shown=f"sessionforce run {path.name}")
    elif "agents" in data:
        with run_emulator(agents=path) as emu:
            assert emu.agent_ids, f"{block.name}: the agents file defines no agent"
    elif "rules" in data:
        with run_emulator(faults=path):
            pass
    else:
        pytest.fail(f"{block.name}: no reader for this YAML; mark it <!-- not-run: why --> if it is a fragment")


def _toml(block: Block, cwd: Path, env: dict[str, str]) -> None:
    path = cwd / block.marks.get("file", "config.toml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(block.code)
    _run(block, [str(BIN / "sessionforce"), "config", "show"], cwd, {**env, "SESSIONFORCE_CONFIG": str(path)},
         shown="sessionforce config show")


@pytest.mark.parametrize("block", ALL, ids=[b.name for b in ALL])
def test_block_runs_as_written(block: Block, standalone: RunningEmulator, folders: dict[Path, Path],
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    if "not-run" in block.marks:
        assert block.marks["not-run"], f"{block.name}: say why it is not run"
        pytest.skip(f"{block.name} not-run: {block.marks['not-run']}")
    assert block.lang in RUNNABLE, f"{block.name}: unknown language {block.lang!r}: run it, or mark it not-run"
    cwd = _folder(block, folders, tmp_path_factory)
    env = _env(block, cwd, standalone)
    if block.lang == "python":
        script = cwd / f"block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        if re.search(r"^(async )?def test_", block.code, re.MULTILINE):
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                    "-o", "asyncio_mode=strict", script.name]
            _run(block, argv, cwd, env, shown=f"pytest {script.name}")
        else:
            _run(block, [sys.executable, script.name], cwd, env, shown=f"python {script.name}")
    elif block.lang in ("bash", "sh", "shell"):
        _run(block, ["bash", "-e", "-o", "pipefail", "-c", block.code], cwd, env, shown=block.code.strip())
    elif block.lang == "console":
        commands = _console_commands(block.code)
        assert commands, f"{block.name}: a console block with no `$ ` command"
        for command in commands:
            _run(block, ["bash", "-o", "pipefail", "-c", command], cwd, env, shown=command)
    elif block.lang == "yaml":
        _yaml(block, cwd, env)
    else:
        _toml(block, cwd, env)


def test_every_document_is_read() -> None:
    """The block finder sees the blocks: a change of markup cannot silently make the test run nothing."""
    assert len(ALL) >= 25
    assert {b.doc.name for b in ALL} >= {"README.md", "cli.md", "client.md", "lifecycle.md", "stores.md"}
    marked = [b for b in ALL if "not-run" in b.marks]
    assert len(marked) < len(ALL) / 2, "most blocks must run"
