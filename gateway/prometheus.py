"""The Prometheus text exposition format (version 0.0.4), sans I/O: metric families in, bytes out.

Families are declared once (name, type, help) and filled with samples; rendering groups each
family's samples under its HELP and TYPE lines, as the format requires. Label values are
escaped; label sets are strings built once per queue or group and reused by every family.
"""

from __future__ import annotations

import math
from gortms.protocol.monitor import HistogramData

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str | int) -> str:
    """`a="1",b="x"` (no braces); empty for none."""
    return ",".join(f'{name}="{escape(str(value))}"' for name, value in pairs.items())


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)


class Exposition:
    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def family(self, name: str, kind: str, help_: str) -> list[str]:
        """The sample lines of a family, declared on first use."""
        found = self._families.get(name)
        if found is None:
            found = self._families[name] = (kind, help_, [])
        return found[2]

    def add(self, name: str, kind: str, help_: str, label_set: str, value: float) -> None:
        braces = f"{{{label_set}}}" if label_set else ""
        self.family(name, kind, help_).append(f"{name}{braces} {number(value)}")

    def histogram(self, name: str, help_: str, label_set: str, data: HistogramData) -> None:
        lines = self.family(name, "histogram", help_)
        prefix = f"{label_set}," if label_set else ""
        running = 0
        for bound, count in zip(data.bounds, data.counts):
            running += count
            lines.append(f'{name}_bucket{{{prefix}le="{bound:g}"}} {running}')
        lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {data.count}')
        braces = f"{{{label_set}}}" if label_set else ""
        lines.append(f"{name}_sum{braces} {number(data.sum)}")
        lines.append(f"{name}_count{braces} {data.count}")

    def render(self) -> bytes:
        out: list[str] = []
        for name, (kind, help_, lines) in self._families.items():
            out.append(f"# HELP {name} {_help(help_)}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(lines)
        out.append("")
        return "\n".join(out).encode()


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
