"""A local Agent API emulator: tokens, sessions, turns, streaming, scripted agents and faults.

It imports nothing from the rest of sessionforce: it is a second, independent reading of the wire
reference, so a misreading on either side shows up as a failing test. See docs/emulator.md.

    from sessionforce.emulator import run_emulator
    with run_emulator() as emu:
        ...  # emu.url serves the token endpoint and the Agent API

The implementation lives in private modules (``_name.py``), each importing only the ones below it;
this table is the public API. ``sessionforce.emulator.pytest_plugin`` is the pytest plugin (entry point
``sessionforce_emulator``).
"""

from sessionforce.emulator._agents import AgentConfigError, CallableAgent, EmulatedAgent, TurnContext
from sessionforce.emulator._config import EmulatorConfig, EmulatorConfigError
from sessionforce.emulator._demo import DEMO_AGENT_ID
from sessionforce.emulator._faults import FaultConfigError
from sessionforce.emulator._server import (
    RunningEmulator,
    bind_socket,
    bind_sockets,
    build_state,
    run_emulator,
    uvicorn_config,
)

__all__ = [
    "DEMO_AGENT_ID",
    "AgentConfigError",
    "CallableAgent",
    "EmulatedAgent",
    "EmulatorConfig",
    "EmulatorConfigError",
    "FaultConfigError",
    "RunningEmulator",
    "TurnContext",
    "bind_socket",
    "bind_sockets",
    "build_state",
    "run_emulator",
    "uvicorn_config",
]
