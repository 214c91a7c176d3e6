"""pytest plugin (entry point ``sessionforce_emulator``): the ``sessionforce_emulator`` fixture.

One emulator (demo agent, default settings) is started per test session and reset before every
test, so each test sees no sessions, tokens, counters, deviations or faults and an unshifted clock.
Starting one takes ~20 ms but stopping one ~100 ms (uvicorn's drain), which a shared server avoids
paying per test. Tests that need other settings (agents, idle timeout, limits) use ``run_emulator(...)``.

Strict mode (every deviation from the documented request shapes answers 400) is the fixture flag:
``sessionforce_emulator_strict = true`` in the pytest ini options turns it on for every test, and the
marker ``@pytest.mark.sessionforce_emulator(strict=False)`` (or ``True``) overrides it for one test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionforce.emulator._server import RunningEmulator, run_emulator

INI_STRICT = "sessionforce_emulator_strict"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ini option that makes strict mode the default of the fixture."""
    parser.addini(INI_STRICT, "Run the sessionforce_emulator fixture in strict mode (deviations answer 400).",
                  type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line("markers", "sessionforce_emulator(strict): settings of the sessionforce_emulator "
                            "fixture for this test (strict=True: deviations from the documented shapes answer 400)")


def emulator_strict(request: pytest.FixtureRequest) -> bool:
    """Strict mode for this test: the marker's ``strict`` if given, else the ini option."""
    marker = request.node.get_closest_marker("sessionforce_emulator")
    if marker is not None and "strict" in marker.kwargs:
        return bool(marker.kwargs["strict"])
    return bool(request.config.getini(INI_STRICT))


@pytest.fixture(scope="session")
def sessionforce_emulator_server() -> Iterator[RunningEmulator]:
    """The shared emulator behind :func:`sessionforce_emulator` (not reset between tests)."""
    with run_emulator() as emulator:
        yield emulator


@pytest.fixture
def sessionforce_emulator(request: pytest.FixtureRequest,
                          sessionforce_emulator_server: RunningEmulator) -> RunningEmulator:
    """A running emulator with the demo agent, freshly reset for this test (strict per the fixture flag)."""
    sessionforce_emulator_server.reset()
    sessionforce_emulator_server.set_strict(emulator_strict(request))
    return sessionforce_emulator_server
