"""Placeholder: filled in by its issue."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    del sub  # not yet implemented


def _unused(args: argparse.Namespace) -> int:
    return 0
