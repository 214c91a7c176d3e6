"""The built web chat committed under src/sessionforce/gateway/static/ is what its sources build: the
sources' hash recorded at build time still matches them, no built file was edited by hand, and (where
Node and the front end's packages are installed, as in CI) a fresh build gives the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEBCHAT = ROOT / "webchat"
STATIC = ROOT / "src" / "sessionforce" / "gateway" / "static"
REBUILD = "cd webchat && npm ci && npm run build"


def sources_hash() -> str:
    """The hash build.mjs records: every source file's path and bytes, in path order."""
    files = ["build.mjs", "package.json", "package-lock.json", "tsconfig.json"]
    files += [p.relative_to(WEBCHAT).as_posix() for p in (WEBCHAT / "src").rglob("*") if p.is_file()]
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        digest.update((WEBCHAT / name).read_bytes() + b"\0")
    return digest.hexdigest()


def build_info() -> dict[str, object]:
    return json.loads((STATIC / "BUILD-INFO.json").read_text())  # type: ignore[no-any-return]


def test_the_committed_build_is_built_from_the_current_sources() -> None:
    assert build_info()["sources_sha256"] == sources_hash(), f"webchat/ changed since the last build: {REBUILD}"


def test_no_built_file_was_edited_by_hand() -> None:
    files = build_info()["files"]
    assert isinstance(files, dict)
    shipped = {p.name for p in STATIC.iterdir()} - {"BUILD-INFO.json"}
    assert shipped == set(files), f"files in static/ that the build did not make, or that are missing: {REBUILD}"
    for name, meta in files.items():
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert digest == meta["sha256"], f"static/{name} differs from what the build wrote: {REBUILD}"


def test_what_we_ship_stays_small() -> None:
    files = build_info()["files"]
    assert isinstance(files, dict)
    assert files["widget.js"]["gzip"] <= 3 * 1024, "the loader every host page downloads"
    assert files["chat.js"]["gzip"] <= 48 * 1024, "the chat, loaded when the widget opens"
    assert files["chat.css"]["gzip"] <= 4 * 1024


def test_a_fresh_build_gives_the_committed_bytes() -> None:
    node = shutil.which("node")
    if node is None or not (WEBCHAT / "node_modules").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must build the web chat first: {REBUILD.replace('build', 'check')}")
        pytest.skip("Node or webchat/node_modules missing (cd webchat && npm ci)")
    result = subprocess.run(
        [node, "build.mjs", "--check"], cwd=WEBCHAT, capture_output=True, text=True, timeout=50, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_package_ships_the_chat() -> None:
    """What `pip install` puts on disk: the page, its assets and the widget, found as package data."""
    from importlib.resources import files

    static = files("sessionforce.gateway") / "static"
    for name in ("index.html", "embed.html", "chat.js", "chat.css", "widget.js", "THIRD-PARTY-LICENSES.txt"):
        assert (static / name).is_file(), name
