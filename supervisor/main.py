"""`gortms serve`: run the supervisor with the settings the CLI loaded."""

from __future__ import annotations

import argparse

from gortms.config import Settings
from supervisor.supervisor import Supervisor


def main(settings: Settings, args: argparse.Namespace) -> int:
    return Supervisor(settings).run()
