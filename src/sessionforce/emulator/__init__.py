"""A local Agent API emulator: tokens, sessions, turns, streaming, scripted agents and faults.

It imports nothing from the rest of sessionforce: it is a second, independent reading of the wire
reference, so a misreading on either side shows up as a failing test. See docs/emulator.md.

    from sessionforce.emulator import run_emulator
    with run_emulator() as emu:
        ...  # emu.url serves the token endpoint and the Agent API
"""

from sessionforce.emulator.agents import AgentConfigError, CallableAgent, EmulatedAgent, TurnContext
from sessionforce.emulator.demo import DEMO_AGENT_ID
from sessionforce.emulator.faults import FaultConfigError
from sessionforce.emulator.server import RunningEmulator, run_emulator

__all__ = [
    "DEMO_AGENT_ID",
    "AgentConfigError",
    "CallableAgent",
    "EmulatedAgent",
    "FaultConfigError",
    "RunningEmulator",
    "TurnContext",
    "run_emulator",
]
