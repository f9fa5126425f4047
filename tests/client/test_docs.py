"""docs/CLIENT.md's examples, run: every ```python block in order, in one namespace, against
a fresh broker (the page's URL replaced by the broker's), so the page cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from tests.broker import ROOT

PAGE = ROOT / "docs" / "CLIENT.md"
PAGE_URL = "http://127.0.0.1:8080"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_page_has_examples_of_every_part_of_the_client():
    code = "\n".join(python_blocks(PAGE))
    for call in ("publish(", "publish_batch(", "fetch(", "ack(", "nack(", "extend(",
                 "settle(", "consume(", "observe(", "consumer(", "AsyncClient", "RetryPolicy",
                 "service_secret=", "token="):
        assert call in code, call


def test_every_python_example_of_the_client_page_runs_against_a_broker(broker_factory,
                                                                      capsys):
    broker = broker_factory()
    namespace: dict = {}
    for number, block in enumerate(python_blocks(PAGE), 1):
        source = block.replace(PAGE_URL, broker.url)
        exec(compile(source, f"{PAGE.name} block {number}", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "queue_not_found 404" in printed and "domain_exists 409" in printed
