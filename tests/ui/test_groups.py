"""Consumer groups and dead letters in the web UI (issue 11, point 5) against a real broker:
the list of every group, a group's page (status, pending messages, consumers, replay by
position and by time, TTL, deletion, live refresh) and the dead letters of its queue, read
without consuming them and redriven; every figure checked against the API's own answer,
every destructive action behind its confirmation. Authentication is off here (open_broker);
tests/ui/test_admin.py covers signing in."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx2
import pytest

from tests.broker import Broker, unique

READY = "() => performance.getEntriesByName('groups-ready').length > 0"
REJECTED = r"status of 4\d\d"  # Chromium's console line for an answer the UI then shows


@dataclass
class World:
    domain: str
    orders: str = "orders"  # no retries: groups billing (pending, a nack) and audit (auto)
    payments: str = "payments"  # maxRetries 0: group charge dead-letters 2 of 3


@pytest.fixture(scope="module")
def api(open_broker: Broker):
    with open_broker.client() as client:
        yield client


def publish(api: httpx2.Client, domain: str, queue: str, count: int, start: int = 0) -> None:
    reply = api.post(f"/api/domains/{domain}/queues/{queue}/messages/batch",
                     json={"messages": [{"n": start + i} for i in range(count)]})
    assert reply.status_code == 201, reply.text


def group_path(domain: str, queue: str, group: str) -> str:
    return f"/api/domains/{domain}/queues/{queue}/consumer-groups/{group}"


def fetch(api: httpx2.Client, domain: str, queue: str, group: str, count: int,
          consumer: str) -> list[dict]:
    reply = api.get(group_path(domain, queue, group) + "/messages",
                    params={"count": count, "consumer": consumer, "timeout": 0})
    assert reply.status_code == 200, reply.text
    return reply.json()["messages"]


def make_world(api: httpx2.Client, prefix: str = "grp") -> World:
    domain = unique(prefix)
    reply = api.post("/api/domains", json={"name": domain, "queueConfigs": {
        "orders": {}, "payments": {"retryEnabled": True, "retryConfig": {"maxRetries": 0}}}})
    assert reply.status_code == 201, reply.text
    world = World(domain)
    publish(api, domain, "orders", 5)
    for spec in ({"groupId": "billing", "ttl": "24h"}, {"groupId": "audit", "ackMode": "auto"}):
        created = api.post(f"/api/domains/{domain}/queues/orders/consumer-groups", json=spec)
        assert created.status_code == 201, created.text
    got = fetch(api, domain, "orders", "billing", 3, "c1")
    nacked = api.post(group_path(domain, "orders", "billing") + "/nack",
                      json={"ids": [got[0]["id"]], "reason": "try later"})
    assert nacked.json()["nacked"] == 1
    publish(api, domain, "payments", 3)
    assert api.post(f"/api/domains/{domain}/queues/payments/consumer-groups",
                    json={"groupId": "charge"}).status_code == 201
    got = fetch(api, domain, "payments", "charge", 3, "p1")
    dead = api.post(group_path(domain, "payments", "charge") + "/nack",
                    json={"ids": [m["id"] for m in got[:2]], "reason": "card declined"})
    assert dead.json()["deadLettered"] == 2
    return world


@pytest.fixture(scope="module")
def world(api: httpx2.Client) -> World:
    return make_world(api)


def open_group(page, broker: Broker, domain: str, queue: str, group: str) -> None:
    page.goto(f"{broker.url}/ui/domains/{domain}/queues/{queue}/groups/{group}")
    page.wait_for_selector("main[data-page=group] #pending-count[data-count]")


def stat(page, key: str) -> str:
    return page.inner_text(f"#group-stats [data-stat={key}] .stat-value").replace(",", "")


def confirm(page) -> None:
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector("dialog", state="detached")


# --- the list -----------------------------------------------------------------------------------


def test_the_list_shows_every_group_as_the_broker_does(page, open_broker, api, world,
                                                       screenshot):
    page.goto(open_broker.url + "/ui/consumer-groups")
    page.wait_for_function(READY)
    assert page.get_attribute("nav a[data-nav=groups]", "aria-current") == "page"
    listed = api.get("/api/consumer-groups").json()["groups"]
    assert page.inner_text("#group-totals [data-stat=groups] .stat-value") == f"{len(listed):,}"
    ours = [g for g in listed if g["domain"] == world.domain]
    assert [g["groupId"] for g in ours] == ["audit", "billing", "charge"]
    for g in ours:
        row = page.locator(f"#groups tr[data-group='{world.domain}/{g['queue']}/{g['groupId']}']")
        cells = row.locator("td").all_inner_texts()
        assert cells[:3] == [world.domain, g["queue"], g["groupId"]]
        assert cells[3:6] == [str(g["lag"]), str(g["pending"]), str(len(g["consumers"]))]
        assert cells[6] == g["circuit"] == "disabled"
        assert cells[7] == g["ackMode"]
    billing = page.locator(f"#groups tr[data-group='{world.domain}/orders/billing'] td")
    assert billing.nth(4).inner_text() == "3"  # 3 delivered, one of them nacked: still pending
    screenshot(page, "consumer-groups")


ONE_ROW = "() => document.querySelectorAll('#groups tbody tr').length === 1"


def test_the_filter_is_in_the_address_and_a_row_leads_to_its_group_and_back(
        page, open_broker, world):
    page.goto(open_broker.url + "/ui/consumer-groups")
    page.wait_for_function(READY)
    page.fill("input[aria-label=Filter]", f"{world.domain} pay")
    page.wait_for_function("() => location.search.startsWith('?filter=')")
    page.wait_for_function(ONE_ROW)  # the filtered table, however soon after the address
    rows = page.locator("#groups tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-group") == f"{world.domain}/payments/charge"
    assert "1 of" in page.inner_text("#groups-count")
    page.evaluate("window.sameDocument = true")
    rows.first.locator("a.group-link").click()
    page.wait_for_selector("main[data-page=group] #pending-count[data-count]")
    assert page.url.endswith(f"/ui/domains/{world.domain}/queues/payments/groups/charge")
    page.go_back()
    page.wait_for_function(READY)
    assert page.input_value("input[aria-label=Filter]") == f"{world.domain} pay"
    page.wait_for_function(ONE_ROW)  # READY may come before the filtered redraw
    assert page.evaluate("window.sameDocument") is True


# --- a group's page -----------------------------------------------------------------------------


def test_a_group_page_opens_directly_with_its_status_and_pending_messages(
        page, open_broker, api, world, screenshot):
    open_group(page, open_broker, world.domain, "orders", "billing")
    status = api.get(group_path(world.domain, "orders", "billing")).json()
    pending = api.get(group_path(world.domain, "orders", "billing") + "/pending").json()
    assert page.title() == "billing · orders · GoRTMS"
    for key in ("position", "lag", "pending", "ackFloor"):
        assert stat(page, key) == str(status[key]), key
    assert stat(page, "consumers") == "1"
    assert stat(page, "circuit") == "disabled"
    assert page.inner_text("#group-settings [data-fact=ackMode]") == "explicit"
    assert page.inner_text("#group-settings [data-fact=ttl]") == "24h without activity"
    assert page.inner_text("#group-settings [data-fact=start]") == "earliest"
    assert "30s" in page.inner_text("#group-settings [data-fact=ackTimeout]")
    assert page.inner_text("#group-settings [data-fact=retries]").startswith("off")
    assert page.locator("#consumers tr[data-consumer=c1]").count() == 1
    assert pending["count"] == 3
    rows = page.locator("#pending tbody tr")
    assert rows.count() == 3
    for entry in pending["messages"]:
        row = page.locator(f"#pending tr[data-position='{entry['position']}']")
        cells = row.locator("td").all_inner_texts()
        assert cells[1] == entry["id"] and cells[2] == entry["consumer"] == "c1"
        assert cells[3] == str(entry["deliveryCount"]) and cells[5] == entry["state"]
        assert cells[6] == (entry["lastNackReason"] or "–")
    assert sorted(page.locator("#pending tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.state)")) == ["delivered", "delivered", "due"]
    assert page.inner_text("#pending tr[data-state=due] td:nth-child(7)") == "try later"
    assert page.get_attribute("#pending-count", "data-count") == "3"
    assert page.locator("#dead-letters [data-dlq=none]").count() == 1
    assert "Retries are off on orders" in page.inner_text("#dead-letters")
    screenshot(page, "group")


def test_the_page_follows_the_group_live_and_pauses(page, open_broker, api):
    domain = make_world(api, "live").domain
    open_group(page, open_broker, domain, "orders", "audit")
    assert stat(page, "lag") == "5"
    publish(api, domain, "orders", 4, start=100)
    page.wait_for_function("() => document.querySelector("
                           "'#group-stats [data-stat=lag] .stat-value').textContent === '9'")
    fetch(api, domain, "orders", "audit", 2, "fresh")
    page.wait_for_selector("#consumers tr[data-consumer=fresh]")
    page.click("button:text-is('Pause')")
    page.wait_for_selector(".updated:text-is('paused')")
    publish(api, domain, "orders", 1, start=200)
    expected = api.get(group_path(domain, "orders", "audit")).json()["lag"]
    assert expected == 8
    page.click("button:text-is('Resume')")  # refreshes at once
    page.wait_for_function("() => document.querySelector("
                           "'#group-stats [data-stat=lag] .stat-value').textContent === '8'")


def test_an_open_circuit_shows_on_the_group_and_in_the_list(page, open_broker, api):
    domain = unique("cb")
    assert api.post("/api/domains", json={"name": domain, "queueConfigs": {"mails": {
        "circuitBreakerEnabled": True, "circuitBreakerConfig": {
            "minimumRequests": 2, "errorThreshold": 0.5, "openTimeout": "1h"}}}}
                    ).status_code == 201
    publish(api, domain, "mails", 2)
    assert api.post(f"/api/domains/{domain}/queues/mails/consumer-groups",
                    json={"groupId": "smtp"}).status_code == 201
    got = fetch(api, domain, "mails", "smtp", 2, "s1")
    api.post(group_path(domain, "mails", "smtp") + "/nack", json={"ids": [m["id"] for m in got]})
    assert api.get(group_path(domain, "mails", "smtp")).json()["circuit"] == "open"
    open_group(page, open_broker, domain, "mails", "smtp")
    card = page.locator("#group-stats [data-stat=circuit]")
    assert card.locator("[data-circuit]").get_attribute("data-circuit") == "open"
    assert "stat-critical" in card.get_attribute("class")
    assert "opens at 50 % failures of the last 2" in page.inner_text(
        "#group-settings [data-fact=breaker]")
    page.goto(open_broker.url + f"/ui/consumer-groups?filter={domain}")
    page.wait_for_function(READY)
    assert page.get_attribute(f"#groups tr[data-group='{domain}/mails/smtp'] [data-circuit]",
                              "data-circuit") == "open"
    assert int(page.inner_text("#group-totals [data-stat=open] .stat-value")) >= 1


def test_an_unknown_group_shows_the_servers_404(page, open_broker, api, world, errors):
    errors.allow(REJECTED)
    expected = api.get(group_path(world.domain, "orders", "nobody")).json()
    page.goto(f"{open_broker.url}/ui/domains/{world.domain}/queues/orders/groups/nobody")
    page.wait_for_selector("main[data-page=group] .notice-error")
    assert expected["message"] in page.inner_text("main .notice-error")
    assert "group_not_found" in page.inner_text("main .notice-error")


# --- acting on it -------------------------------------------------------------------------------


def test_replay_to_a_position_asks_first_and_drops_the_pending_list(page, open_broker, api):
    domain = make_world(api, "replay").domain
    open_group(page, open_broker, domain, "orders", "billing")
    base = group_path(domain, "orders", "billing")
    before = api.get(base).json()
    page.fill("#replay-form input[name=position]", "2")
    page.click("#replay-form button[type=submit]")
    page.wait_for_selector("dialog[open]")
    assert "pending list (3) is dropped" in page.inner_text("dialog[open]")
    page.click("dialog[open] button[value=cancel]")
    page.wait_for_selector("dialog", state="detached")
    assert api.get(base).json()["position"] == before["position"] == 4  # nothing moved
    page.click("#replay-form button[type=submit]")
    confirm(page)
    page.wait_for_function("() => document.querySelector("
                           "'#group-stats [data-stat=position] .stat-value').textContent === '2'")
    after = api.get(base).json()
    assert after["position"] == 2 and after["pending"] == 0 and after["lag"] == 4
    page.wait_for_selector("#pending-count[data-count='0']")
    assert page.inner_text("#pending .empty").startswith("Nothing pending")


def test_replay_by_time_and_the_checks_before_sending(page, open_broker, api):
    domain = make_world(api, "seek").domain
    base = group_path(domain, "orders", "billing")
    open_group(page, open_broker, domain, "orders", "billing")
    page.select_option("#replay-form select[name=mode]", "timestamp")
    assert page.is_hidden("#replay-form input[name=position]")
    page.fill("#replay-form input[name=timestamp]", "yesterday")
    page.click("#replay-form button[type=submit]")
    assert "RFC 3339" in page.inner_text("#replay-form [data-field=timestamp] .field-error")
    assert page.locator("dialog").count() == 0  # refused before asking
    page.fill("#replay-form input[name=timestamp]", "2000-01-01T00:00:00Z")
    page.click("#replay-form button[type=submit]")
    assert "first message stored at or after 2000-01-01T00:00:00Z" in page.inner_text(
        "dialog[open]")
    confirm(page)
    page.wait_for_function("() => document.querySelector("
                           "'#group-stats [data-stat=position] .stat-value').textContent === '1'")
    assert api.get(base).json()["position"] == 1
    page.select_option("#replay-form select[name=mode]", "latest")
    page.click("#replay-form button[type=submit]")
    confirm(page)
    page.wait_for_function("() => document.querySelector("
                           "'#group-stats [data-stat=position] .stat-value').textContent === '6'")
    assert api.get(base).json()["lag"] == 0


def test_the_ttl_changes_and_the_servers_refusal_shows_at_the_field(page, open_broker, api,
                                                                     world, errors):
    errors.allow(REJECTED)
    base = group_path(world.domain, "orders", "audit")
    open_group(page, open_broker, world.domain, "orders", "audit")
    assert page.input_value("#ttl-form input[name=ttl]") == "0"
    page.fill("#ttl-form input[name=ttl]", "soon")
    page.click("#ttl-form button[type=submit]")
    page.wait_for_selector("#ttl-form [data-field=ttl] .field-error:not([hidden])")
    refused = api.put(base + "/ttl", json={"ttl": "soon"}).json()["message"]
    assert page.inner_text("#ttl-form [data-field=ttl] .field-error") == refused
    page.fill("#ttl-form input[name=ttl]", "90m")
    page.click("#ttl-form button[type=submit]")
    page.wait_for_selector("#group-settings [data-fact=ttl]:text-is('1h30m without activity')")
    assert api.get(base).json()["ttl"] == "1h30m"  # as the server writes 90m
    assert page.inner_text("#group-settings [data-fact=expires]").startswith("in about 1 h 29")


def test_consumers_are_registered_and_removed_after_asking(page, open_broker, api, world,
                                                           errors):
    errors.allow(REJECTED)
    base = group_path(world.domain, "orders", "audit")
    open_group(page, open_broker, world.domain, "orders", "audit")
    page.fill("#register-form input[name=consumerId]", "bad name")
    page.click("#register-form button[type=submit]")
    page.wait_for_selector("#register-form [data-field=consumerId] .field-error:not([hidden])")
    assert page.inner_text("#register-form [data-field=consumerId] .field-error").startswith(
        "consumerId must be a name")
    page.fill("#register-form input[name=consumerId]", "worker-1")
    page.click("#register-form button[type=submit]")
    page.wait_for_selector("#consumers tr[data-consumer=worker-1]")
    assert "worker-1" in [c["id"] for c in api.get(base).json()["consumers"]]
    page.click("#consumers tr[data-consumer=worker-1] button.consumer-remove")
    assert "worker-1 leaves audit" in page.inner_text("dialog[open]")
    confirm(page)
    page.wait_for_selector("#consumers tr[data-consumer=worker-1]", state="detached")
    assert "worker-1" not in [c["id"] for c in api.get(base).json()["consumers"]]


def test_deleting_a_group_needs_its_name_typed(page, open_broker, api, errors):
    domain = make_world(api, "del").domain
    base = group_path(domain, "orders", "audit")
    open_group(page, open_broker, domain, "orders", "audit")
    page.click("button:text-is('Delete group…')")
    ok = page.locator("dialog[open] button[value=ok]")
    assert ok.is_disabled()
    page.click("dialog[open] button[value=cancel]")
    page.wait_for_selector("dialog", state="detached")
    assert api.get(base).status_code == 200
    page.click("button:text-is('Delete group…')")
    page.fill("dialog[open] input.confirm-input", "audit")
    confirm(page)
    page.wait_for_function(READY)
    assert page.url.endswith("/ui/consumer-groups?filter=" + f"{domain}%2Forders")
    assert api.get(base).status_code == 404
    assert page.locator(f"#groups tr[data-group='{domain}/orders/audit']").count() == 0
    assert page.locator(f"#groups tr[data-group='{domain}/orders/billing']").count() == 1


# --- dead letters -------------------------------------------------------------------------------


def test_dead_letters_are_read_without_consuming_them_then_redriven(page, open_broker, api,
                                                                    screenshot):
    domain = make_world(api, "dlq").domain
    dlq = f"/api/domains/{domain}/queues/payments.dlq"
    open_group(page, open_broker, domain, "payments", "charge")
    summary = page.locator("#dead-letters [data-dlq=exists]")
    assert summary.get_attribute("data-count") == "2"
    assert "payments.dlq holds 2 dead letters" in summary.inner_text()
    assert "1 time (0 retries)" in page.inner_text("#dead-letters .dlq-rule")
    page.click("#dead-letters button.dlq-browse")
    page.wait_for_selector("#dead-letters .dlq-list[data-shown='2']")
    rows = page.locator("#dead-letters .dlq-list tbody tr")
    assert rows.count() == 2
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[2].startswith("charge") and "this group" in first[2]
    assert first[3] == "1" and first[4] == "card declined" and first[5] == "1"
    assert '"n":0' in first[7]
    # reading consumed nothing: the dead letters are all there, no group was made on them
    held = api.get(dlq).json()
    assert held["messageCount"] == 2 and held["groups"] == 0
    screenshot(page, "group-dead-letters")
    page.fill("#dead-letters input[name=limit]", "1")
    page.click("#dead-letters .dlq-redrive button[type=submit]")
    assert "Up to 1 of the 2 messages in payments.dlq" in page.inner_text("dialog[open]")
    confirm(page)
    page.wait_for_selector("#dead-letters [data-redriven='1']")
    page.wait_for_selector("#dead-letters [data-dlq=exists][data-count='1']")
    assert api.get(dlq).json()["messageCount"] == 1
    back = fetch(api, domain, "payments", "charge", 10, "p2")
    assert [m["payload"] for m in back] == [{"n": 0}]  # at the end of payments, as it was
    assert not any(k.startswith("x-") for k in back[0]["headers"])


def test_redrive_refusals_show_at_the_limit_and_nothing_moves(page, open_broker, api, errors):
    errors.allow(REJECTED)
    domain = make_world(api, "dlq0").domain
    open_group(page, open_broker, domain, "payments", "charge")
    page.fill("#dead-letters input[name=limit]", "0")
    page.click("#dead-letters .dlq-redrive button[type=submit]")
    confirm(page)
    page.wait_for_selector("#dead-letters [data-field=limit] .field-error:not([hidden])")
    assert page.inner_text("#dead-letters [data-field=limit] .field-error") == \
        "limit must be an integer >= 1"
    assert api.get(f"/api/domains/{domain}/queues/payments.dlq").json()["messageCount"] == 2


# --- how it copes with many ---------------------------------------------------------------------


def test_with_1000_groups_the_list_is_ready_in_what_time(page, browser, open_broker, api):
    """Not asserted: printed, and recorded in docs/PERFORMANCE.md ("Web UI")."""
    domain = unique("many")
    configs = {f"q{i:03d}": {} for i in range(100)}
    assert api.post("/api/domains", json={"name": domain, "queueConfigs": configs}
                    ).status_code == 201
    for i in range(100):
        for g in range(10):
            reply = api.post(f"/api/domains/{domain}/queues/q{i:03d}/consumer-groups",
                             json={"groupId": f"g{g}"})
            assert reply.status_code == 201, reply.text
    started = time.perf_counter()
    total = len(api.get("/api/consumer-groups").json()["groups"])
    listing_ms = (time.perf_counter() - started) * 1000
    assert total >= 1000
    figures = []
    for _ in range(3):
        page.goto(open_broker.url + "/ui/consumer-groups")
        page.wait_for_function(READY)
        figures.append(page.evaluate(
            "() => performance.getEntriesByName('groups-ready')[0].startTime"))
    assert page.locator("#groups tbody tr").count() == 50  # only the first rows are drawn
    assert page.inner_text("#group-totals [data-stat=groups] .stat-value") == f"{total:,}"
    page.fill("input[aria-label=Filter]", f"{domain} q042")
    page.wait_for_function("() => document.querySelectorAll('#groups tbody tr').length === 10")
    print(f"\nconsumer groups page ready with {total} groups: "
          + ", ".join(f"{v:.0f}" for v in figures) + " ms (first with an empty cache); "
          + f"GET /api/consumer-groups {listing_ms:.0f} ms")
