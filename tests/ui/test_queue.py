"""A queue's page in the web UI (issue 11, points 3 and 4) against a real broker: its positions,
retained messages and bytes, fill, config and consumer groups as the API has them; its dead
letters; the retained messages read page by page without consuming anything; the live view
showing what is published (authentication off here; tests/ui/test_live.py has it on, and the
load); the publisher (one message, a batch, headers, message id, Idempotency-Key, Delay) with
the server's refusals shown where they apply; delete."""

from __future__ import annotations

import re

import httpx2
import pytest

from tests.broker import Broker, unique

SCHEMA = {"fields": {"order_id": "string", "amount": "number"}}


@pytest.fixture(scope="module")
def http(open_broker: Broker):
    with open_broker.client() as client:
        yield client


def make_queue(http: httpx2.Client, config: dict | None = None, schema: dict | None = SCHEMA,
               queue: str = "orders") -> tuple[str, str]:
    domain = unique("q")
    body: dict = {"name": domain, "queueConfigs": {queue: config or {}}}
    if schema:
        body["schema"] = schema
    reply = http.post("/api/domains", json=body)
    assert reply.status_code == 201, reply.text
    return domain, queue


def publish(http: httpx2.Client, domain: str, queue: str, count: int, **headers: str) -> int:
    reply = http.post(f"/api/domains/{domain}/queues/{queue}/messages/batch", headers=headers,
                      json={"messages": [{"order_id": f"o{i}", "amount": i}
                                         for i in range(count)]})
    assert reply.status_code == 201, reply.text
    return reply.json()["firstPosition"]


def opened(page, broker: Broker, domain: str, queue: str) -> None:
    page.goto(f"{broker.url}/ui/domains/{domain}/queues/{queue}")
    page.wait_for_selector(".queue-page[data-ready=true]")


def live(page) -> None:
    page.wait_for_selector(".live-view[data-state=live]")


def stat(page, key: str) -> str:
    return page.inner_text(f"#queue-totals [data-stat={key}] .stat-value")


def field_error(page, name: str) -> str:
    locator = page.locator(f".publisher [data-field='{name}'] .field-error")
    locator.wait_for(state="visible")
    return locator.inner_text()


def submit(page) -> None:
    page.click(".publisher-form button[type=submit]")


def top(page) -> None:
    page.evaluate("() => window.scrollTo(0, 0)")


# --- what the page shows -------------------------------------------------------------------------


def test_the_page_shows_the_queues_figures_config_and_groups(page, open_broker, http,
                                                             screenshot):
    domain, queue = make_queue(http, {"maxSize": 10, "ttl": "2h", "circuitBreakerEnabled": True})
    q = f"/api/domains/{domain}/queues/{queue}"
    publish(http, domain, queue, 8, **{"X-Header-source": "web"})
    got = http.get(f"{q}/messages", params={"group": "billing", "count": 3, "consumer": "c1"})
    assert got.json()["count"] == 3
    assert http.post(f"{q}/consumer-groups", json={"groupId": "audit", "ackMode": "auto",
                                                  "start": "latest"}).status_code == 201
    opened(page, open_broker, domain, queue)
    info = http.get(q).json()
    assert stat(page, "messages") == str(info["messageCount"]) == "8"
    assert stat(page, "first") == str(info["firstPosition"]) == "1"
    assert stat(page, "last") == str(info["lastPosition"]) == "8"
    assert stat(page, "groups") == "2"
    assert re.fullmatch(r"\d+(\.\d)? KiB|\d+ B", stat(page, "bytes"))
    assert page.get_attribute("#queue-totals", "data-percent") == "80.0"
    assert "80 % of maxSize 10" in page.inner_text("#queue-totals [data-stat=messages]")
    assert page.inner_text("#config [data-key=ttl] dd") == "2h"
    assert page.inner_text("#config [data-key=circuitBreakerEnabled] dd") == "on"
    groups = {g["groupId"]: g for g in http.get(f"{q}/consumer-groups").json()["groups"]}
    for name, group in groups.items():
        cells = page.locator(f"#groups tr[data-group={name}] td")
        assert cells.nth(0).locator("a").get_attribute("href") == \
            f"/ui/domains/{domain}/queues/{queue}/groups/{name}"
        assert cells.nth(1).inner_text() == group["ackMode"]
        assert cells.nth(3).inner_text() == str(group["lag"])
        assert cells.nth(4).inner_text() == str(group["pending"])
        assert cells.nth(5).inner_text() == str(len(group["consumers"]))
        assert cells.nth(6).inner_text() == group["circuit"] == "closed"
    assert (groups["billing"]["pending"], groups["audit"]["lag"]) == (3, 0)
    # busy, for the screenshot: a message from the publisher, seen live, and the stored ones
    live(page)
    page.fill("textarea[name=payload]", '{"order_id": "ui-1", "amount": 12.5}')
    page.click("#add-header")
    page.fill(".header-row .header-name", "trace-id")
    page.fill(".header-row .header-value", "abc123")
    submit(page)
    page.wait_for_selector(".live-view .message-row[data-position='9']")
    page.click("#browse-oldest")
    page.wait_for_selector(".browse[data-state=done][data-count='9']")
    page.wait_for_selector("#queue-totals [data-stat=last] .stat-value:text-is('9')")
    top(page)
    screenshot(page, "queue")


def test_the_live_view_shows_each_message_as_it_is_published(page, open_broker, http):
    domain, queue = make_queue(http)
    opened(page, open_broker, domain, queue)
    live(page)
    # the counts are drawn with the next frame after `connected` (at most every 100 ms)
    page.wait_for_function("() => document.querySelector('.live-counts')"
                           ".textContent.includes('live from position 1')")
    first = publish(http, domain, queue, 3, **{"X-Header-tenant": "acme"})
    page.wait_for_selector(".live-view[data-received='3']")
    rows = page.locator(".live-view .message-row")
    assert rows.count() == 3
    assert rows.nth(0).get_attribute("data-position") == str(first + 2)  # newest first
    cells = rows.nth(2).locator(".cell")
    assert cells.nth(0).inner_text() == str(first)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", cells.nth(1).inner_text())
    assert cells.nth(3).inner_text() == "tenant: acme"
    assert cells.nth(4).inner_text() == '{"order_id":"o0","amount":0}'
    cells.nth(4).click()  # the whole payload, indented
    assert page.inner_text(".live-view .message-row.open pre.json") == \
        '{\n  "order_id": "o0",\n  "amount": 0\n}'
    reply = http.get(f"/api/domains/{domain}/queues/{queue}/consumer-groups")
    assert reply.json()["groups"] == []  # observing made no group


def test_a_queue_deleted_elsewhere_closes_the_live_view(page, open_broker, http, errors):
    errors.allow(r"status of 404")  # the page's next refresh finds the queue gone
    domain, queue = make_queue(http)
    opened(page, open_broker, domain, queue)
    live(page)
    assert http.delete(f"/api/domains/{domain}/queues/{queue}").status_code == 200
    page.wait_for_selector(".live-view[data-state=closed]")
    assert page.inner_text(".live-state-text") == \
        f"queue '{domain}/{queue}' was deleted (4410)"  # no reconnection for it


# --- the publisher -------------------------------------------------------------------------------


def test_one_message_with_headers_id_key_and_a_delay(page, open_broker, http):
    domain, queue = make_queue(http)
    q = f"/api/domains/{domain}/queues/{queue}"
    assert http.post(f"{q}/consumer-groups", json={"groupId": "later"}).status_code == 201
    opened(page, open_broker, domain, queue)
    live(page)
    # the payload starts from the domain's schema
    assert page.input_value("textarea[name=payload]") == \
        '{\n  "order_id": "",\n  "amount": 0\n}'
    page.fill("textarea[name=payload]", '{"order_id": "ord-7",  "amount": 7}')
    for name, value in (("source", "web"), ("Trace-Id", "t-1")):
        page.click("#add-header")
        page.locator(".header-row").last.locator(".header-name").fill(name)
        page.locator(".header-row").last.locator(".header-value").fill(value)
    page.fill("input[name=messageId]", "ord-7")
    page.fill("input[name=idempotencyKey]", "key-7")
    page.select_option(".delivery-kind", "delay")
    page.fill(".delivery-delay", "1h")
    submit(page)
    result = page.locator(".publish-result").first
    result.wait_for()
    position = http.get(q).json()["lastPosition"]
    assert result.get_attribute("data-first") == str(position) == "1"
    assert result.get_attribute("data-ids") == "ord-7"
    assert "held until 1h from now" in result.inner_text()
    row = page.locator(f".live-view .message-row[data-position='{position}'] .cell")
    row.nth(0).wait_for()
    assert row.nth(2).inner_text() == "ord-7"
    assert row.nth(3).locator(".chip").all_inner_texts() == ["source: web", "trace-id: t-1"]
    assert row.nth(4).inner_text() == '{"order_id":"ord-7","amount":7}'
    # held back by the Delay: a fetch gets nothing and keeps it pending as delayed
    assert http.get(f"{q}/consumer-groups/later/messages", params={"timeout": 0}).json()[
        "count"] == 0
    pending = http.get(f"{q}/consumer-groups/later/pending").json()["messages"]
    assert [(m["position"], m["state"]) for m in pending] == [(position, "delayed")]
    # the same Idempotency-Key again: nothing new, the first answer
    submit(page)
    page.wait_for_selector(".publish-result[data-duplicate=true]")
    again = page.locator(".publish-result").first
    assert again.get_attribute("data-first") == str(position)
    assert "Already published" in again.inner_text()
    assert http.get(q).json()["lastPosition"] == position


def test_an_array_publishes_a_batch(page, open_broker, http):
    domain, queue = make_queue(http)
    publish(http, domain, queue, 2)
    opened(page, open_broker, domain, queue)
    page.fill("textarea[name=payload]", '[{"order_id": "b1", "amount": 1},\n'
                                        ' {"id": "b-2", "order_id": "b2", "amount": 2},\n'
                                        ' {"order_id": "b3", "amount": 3}]')
    page.wait_for_selector(".publish-kind:text-is('publishes a batch of 3 messages')")
    page.select_option(".delivery-kind", "at")  # a time in the past: delivered at once
    page.fill(".delivery-at", "2020-01-02T03:04:05")
    submit(page)
    result = page.locator(".publish-result").first
    result.wait_for()
    assert (result.get_attribute("data-first"), result.get_attribute("data-last")) == ("3", "5")
    ids = result.get_attribute("data-ids").split(" ")
    assert len(ids) == 3 and ids[1] == "b-2"
    assert "Published 3 messages at positions 3–5" in result.inner_text()
    assert "held until 2020-01-02T03:04:05" in result.inner_text()
    delivered = http.get(f"/api/domains/{domain}/queues/{queue}/messages",
                         params={"group": "now", "count": 10}).json()["messages"]
    assert [m["position"] for m in delivered] == [1, 2, 3, 4, 5]  # none held back
    assert http.get(f"/api/domains/{domain}/queues/{queue}").json()["lastPosition"] == 5
    page.wait_for_selector("#queue-totals [data-stat=last] .stat-value:text-is('5')")


def test_a_servers_refusal_stays_at_the_field_after_the_last_keystrokes_check(
        page, open_broker, http, errors):
    # The editor checks what was typed 250 ms after the last keystroke; a submit right after
    # typing gets the server's 422 sooner than that, and the late check must not wipe it.
    errors.allow(r"status of 422")
    domain, queue = make_queue(http)
    opened(page, open_broker, domain, queue)
    page.fill("textarea[name=payload]", '{"order_id": 7, "amount": 1}')
    submit(page)
    expected = "field 'order_id' must be of type string, got number"
    assert field_error(page, "payload") == expected
    page.wait_for_timeout(400)  # past the keystroke check's 250 ms: nothing to wait on
    assert field_error(page, "payload") == expected


def test_refusals_are_shown_where_they_apply(page, open_broker, http, errors):
    errors.allow(r"status of (400|413|422|429)")  # each refusal provoked below
    domain, queue = make_queue(http, {"maxSize": 1})
    q = f"/api/domains/{domain}/queues/{queue}"
    opened(page, open_broker, domain, queue)
    payload = "textarea[name=payload]"
    # the page's own checks: JSON that does not parse, not an object, a bad header, an id for
    # a batch
    page.fill(payload, '{"order_id": "x",\n "amount": }')
    submit(page)
    assert field_error(page, "payload").startswith("Not valid JSON: ")
    page.fill(payload, "[1]")
    submit(page)
    assert field_error(page, "payload") == "messages[0] must be a JSON object"
    page.fill(payload, '"text"')
    submit(page)
    assert field_error(page, "payload").startswith("a message must be a JSON object")
    page.fill(payload, '[{"order_id": "x", "amount": 1}]')
    page.fill("input[name=messageId]", "one-id")
    page.click("#add-header")
    page.fill(".header-row .header-name", "bad name")
    submit(page)
    assert field_error(page, "headers").startswith("header name “bad name” must be")
    page.fill(".header-row .header-name", "good")
    submit(page)
    assert field_error(page, "messageId").startswith("a batch takes each message's id")
    page.fill("input[name=messageId]", "")
    # the server's: the schema (422) and a body too large (413) at the payload, a bad Delay
    # (400) at the delivery, a full queue (429) above the buttons
    page.fill(payload, '{"order_id": 1, "amount": 1}')
    submit(page)
    assert field_error(page, "payload") == "field 'order_id' must be of type string, got number"
    page.fill(payload, '[{"order_id": "a", "amount": 1}, {"order_id": "b"}]')
    submit(page)
    assert field_error(page, "payload") == \
        "messages[1]: field 'amount' is required by the domain schema (number)"
    page.fill(payload, '{"order_id": "%s", "amount": 1}' % ("x" * 1_100_000))
    submit(page)
    assert re.fullmatch(r"the body has \d+ bytes; the limit is 1048576 \(http.maxBodyBytes\)",
                        field_error(page, "payload"))
    page.fill(payload, '{"order_id": "d", "amount": 1}')
    page.select_option(".delivery-kind", "delay")
    page.fill(".delivery-delay", "soon")
    submit(page)
    assert field_error(page, "delivery").startswith("the Delay header must be a duration")
    assert http.get(q).json()["lastPosition"] == 0  # nothing was stored by any of these
    page.select_option(".delivery-kind", "now")
    http.post(f"{q}/consumer-groups", json={"groupId": "slow"})
    submit(page)  # the one message maxSize allows
    page.wait_for_selector(".publish-result")
    submit(page)
    error = page.locator(".publisher .form-error")
    error.wait_for(state="visible")
    assert "maxSize 1" in error.inner_text() and "queue_full" in error.inner_text()


# --- retained messages and dead letters ----------------------------------------------------------


def test_retained_messages_are_read_page_by_page_without_consuming(page, open_broker, http):
    domain, queue = make_queue(http)
    q = f"/api/domains/{domain}/queues/{queue}"
    for _ in range(3):
        publish(http, domain, queue, 40)
    assert http.post(f"{q}/consumer-groups", json={"groupId": "reader"}).status_code == 201
    opened(page, open_broker, domain, queue)
    browse = page.locator(".browse")

    def shown() -> list[int]:
        page.wait_for_selector(".browse[data-state=done]")
        return page.locator(".browse .message-row").evaluate_all(
            "rows => rows.map(r => Number(r.dataset.position))")

    page.click("#browse-oldest")
    assert shown() == list(range(1, 51))
    page.click("#browse-next")
    page.wait_for_selector(".browse[data-first='51']")
    assert shown() == list(range(51, 101))
    page.click("#browse-next")
    page.wait_for_selector(".browse[data-first='101']")
    assert shown() == list(range(101, 121))
    assert page.locator("#browse-next").is_hidden()  # the end
    page.click("#browse-newest")
    page.wait_for_selector(".browse[data-first='71']")
    assert shown() == list(range(71, 121))
    page.fill(".browse-from", "33")
    page.click("#browse-show")
    page.wait_for_selector(".browse[data-first='33']")
    assert shown() == list(range(33, 83))
    row = page.locator(".browse .message-row[data-position='33'] .cell")
    assert row.nth(4).inner_text() == '{"order_id":"o32","amount":32}'
    assert "positions 33–82 of 1–120 retained" in browse.inner_text()
    # nothing consumed: the one group is where it was, with nothing pending
    groups = http.get(f"{q}/consumer-groups").json()["groups"]
    assert [(g["groupId"], g["position"], g["lag"], g["pending"]) for g in groups] == \
        [("reader", 1, 120, 0)]


def test_the_dead_letters_are_linked_both_ways(page, open_broker, http):
    domain, queue = make_queue(http, {"retryEnabled": True, "retryConfig": {"maxRetries": 0}})
    q = f"/api/domains/{domain}/queues/{queue}"
    publish(http, domain, queue, 1)
    delivered = http.get(f"{q}/messages", params={"group": "work"}).json()["messages"]
    reply = http.post(f"{q}/consumer-groups/work/nack", json={"ids": [delivered[0]["id"]],
                                                             "reason": "broken"})
    assert reply.json()["deadLettered"] == 1
    opened(page, open_broker, domain, queue)
    dead = f"/ui/domains/{domain}/queues/{queue}.dlq"
    link = page.locator(f"#dead-letters a[href='{dead}']")
    link.first.wait_for()
    assert "1 dead letter" in page.inner_text("#dead-letters")
    link.first.click()
    page.wait_for_url("**" + dead)
    page.wait_for_selector(".queue-page[data-ready=true]")
    assert "holds the dead letters of" in page.inner_text(".queue-page .notice-info")
    assert stat(page, "messages") == "1"
    page.click("#browse-oldest")  # a dead letter's headers say where it came from
    page.wait_for_selector(".browse[data-count='1']")
    headers = page.locator(".browse .cell-headers .chip").all_inner_texts()
    assert "x-origin-group: work" in headers and "x-reason: broken" in headers
    page.click(f".queue-page .notice-info a[href='/ui/domains/{domain}/queues/{queue}']")
    page.wait_for_selector(".queue-page[data-ready=true] #delete-queue")
    assert page.url.endswith(f"/queues/{queue}")


# --- delete, unknown -----------------------------------------------------------------------------


def test_deleting_the_queue_asks_then_goes_back_to_the_domain(page, open_broker, http):
    domain, queue = make_queue(http)
    opened(page, open_broker, domain, queue)
    page.click("#delete-queue")
    assert page.locator("dialog button[value=ok]").is_disabled()
    page.fill("dialog input", queue)
    page.click("dialog button[value=ok]")
    page.wait_for_url(f"**/ui/domains/{domain}")
    page.wait_for_selector(".domain-page[data-ready=true]")
    assert http.get(f"/api/domains/{domain}/queues/{queue}").status_code == 404
    assert page.locator(f"#queues tr[data-queue={queue}]").count() == 0


def test_an_unknown_queue_is_the_servers_404(page, open_broker, http, errors):
    errors.allow(r"status of 404")
    domain, _ = make_queue(http)
    page.goto(f"{open_broker.url}/ui/domains/{domain}/queues/nope")
    page.wait_for_selector("main[data-page=queue] .notice-error")
    assert "queue 'nope' not found" in page.inner_text("main .notice-error")
    assert page.locator(".live-view").count() == 0  # no socket for it either
