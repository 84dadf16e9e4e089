"""A local stand-in for the Feishu / Lark Open Platform auth API (aiohttp).

Models what shared/lark-open-api.md records, with fault injection for tests and demos.
"""

from lark_operator.emulator.runner import EmulatorHandle, running_emulator
from lark_operator.emulator.server import STATE, create_app
from lark_operator.emulator.state import EmulatorState, Fault

__all__ = ["STATE", "EmulatorHandle", "EmulatorState", "Fault", "create_app", "running_emulator"]
