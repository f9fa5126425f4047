"""Domains and queues in the web UI (issue 11, point 3) against a real broker: the list of
domains is the broker's, a domain is created with its schema (the server's 400 and 409 shown at
the field), deleted only once its name is typed; a domain's page shows its schema and queues
with their fill, creates a queue with every setting, the server's defaults shown and sent, a
setting the server refuses named at its field; and the addresses open directly, with the back
button working (point 7)."""

from __future__ import annotations

import re

import httpx2
import pytest

from tests.broker import Broker, unique

GO_SCHEMA = {"fields": {"order_id": "string", "amount": "number"}}

# The queue form's fields: the setting's path in the API -> how it is read from the page.
SETTINGS = ["maxSize", "ttl", "retention", "isPersistent", "ackTimeout", "workerCount",
            "retryEnabled", "retryConfig.maxRetries", "retryConfig.initialDelay",
            "retryConfig.factor", "retryConfig.maxDelay", "circuitBreakerEnabled",
            "circuitBreakerConfig.errorThreshold", "circuitBreakerConfig.successThreshold",
            "circuitBreakerConfig.minimumRequests", "circuitBreakerConfig.openTimeout"]


@pytest.fixture(scope="module")
def http(open_broker: Broker):
    with open_broker.client() as client:
        yield client


def make_domain(http: httpx2.Client, prefix: str = "ui", **body) -> str:
    name = unique(prefix)
    reply = http.post("/api/domains", json={"name": name, **body})
    assert reply.status_code == 201, reply.text
    return name


def opened(page, broker: Broker, path: str, ready: str) -> None:
    page.goto(broker.url + path)
    page.wait_for_selector(f"{ready}[data-ready=true]")


def top(page) -> None:
    """Scroll to the top before a full-page screenshot (the bar is sticky)."""
    page.evaluate("() => window.scrollTo(0, 0)")


def field_error(page, name: str) -> str:
    locator = page.locator(f"[data-field='{name}'] .field-error")
    locator.wait_for(state="visible")
    return locator.inner_text()


def setting(config: dict, path: str):
    value = config
    for key in path.split("."):
        value = value[key]
    return value


def form_values(page) -> dict[str, object]:
    """What the queue form shows for each setting, typed as the API types it."""
    out: dict[str, object] = {}
    for path in SETTINGS:
        box = page.locator(f"[name='config.{path}']")
        kind = box.get_attribute("type")
        if kind == "checkbox":
            out[path] = box.is_checked()
        elif kind == "number":
            out[path] = float(box.input_value())
        else:
            out[path] = box.input_value()
    return out


# --- the list ------------------------------------------------------------------------------------


def test_the_list_is_the_brokers_domains(page, open_broker, http, screenshot):
    shop = make_domain(http, "shop", queueConfigs={"orders": {}, "mails": {}})
    reply = http.post(f"/api/domains/{shop}/queues/orders/messages/batch",
                      json={"messages": [{"n": i} for i in range(3)]})
    assert reply.status_code == 201
    make_domain(http, "logs")
    opened(page, open_broker, "/ui/domains", ".domains-page")
    listed = http.get("/api/domains").json()["domains"]
    rows = page.locator("#domain-list tbody tr")
    assert rows.count() == len(listed) >= 2
    for i, domain in enumerate(listed):  # sorted by name, as the API sorts them
        cells = rows.nth(i).locator("td")
        assert cells.nth(0).inner_text() == domain["name"]
        assert cells.nth(1).inner_text() == str(domain["queueCount"])
        assert cells.nth(2).inner_text() == str(domain["messageCount"])
    row = page.locator(f"#domain-list tr[data-domain='{shop}'] td")
    assert (row.nth(1).inner_text(), row.nth(2).inner_text()) == ("2", "3")
    assert page.get_attribute(f"#domain-list tr[data-domain='{shop}'] a", "href") == \
        f"/ui/domains/{shop}"
    assert page.get_attribute("nav a[data-nav=domains]", "aria-current") == "page"
    top(page)
    screenshot(page, "domains")


def test_a_domain_is_created_with_its_schema_and_its_page_opens(page, open_broker, http):
    opened(page, open_broker, "/ui/domains", ".domains-page")
    name = unique("made")
    page.fill("#create-domain input[name=name]", name)
    page.fill("#create-domain textarea[name=schema]", '{"fields": {"order_id": "string",\n'
                                                      '  "amount": "number"}}')
    page.click("#create-domain button[type=submit]")
    page.wait_for_url(f"**/ui/domains/{name}")
    page.wait_for_selector(".domain-page[data-ready=true]")
    assert http.get(f"/api/domains/{name}").json()["schema"] == GO_SCHEMA
    assert page.get_attribute("#schema-panel [data-schema]", "data-schema") == "fields"
    assert '"order_id": "string"' in page.inner_text("#schema")
    # without a schema: none is sent, and the page says any object goes
    page.goto(open_broker.url + "/ui/domains")
    page.wait_for_selector(".domains-page[data-ready=true]")
    bare = unique("bare")
    page.fill("#create-domain input[name=name]", bare)
    page.click("#create-domain button[type=submit]")
    page.wait_for_url(f"**/ui/domains/{bare}")
    page.wait_for_selector("#schema-panel [data-schema=none]")
    assert http.get(f"/api/domains/{bare}").json()["schema"] is None


def test_the_servers_refusals_are_shown_at_their_field(page, open_broker, http, errors):
    errors.allow(r"status of (400|409)")  # Chromium's line for each refusal provoked here
    taken = make_domain(http, "taken")
    opened(page, open_broker, "/ui/domains", ".domains-page")
    form = "#create-domain"
    # checked in the page first: a name the server would refuse, JSON that does not parse
    page.fill(f"{form} input[name=name]", "bad name")
    page.fill(f"{form} textarea[name=schema]", '{"fields":\n  {"a": "string",}}')
    page.click(f"{form} button[type=submit]")
    assert "1-128 characters" in field_error(page, "name")
    assert re.search(r"Not valid JSON: .*line 2", field_error(page, "schema"))
    # the server's: 409 at the name, 400 (a bad type, a bad JSON Schema) at the schema
    page.fill(f"{form} input[name=name]", taken)
    page.fill(f"{form} textarea[name=schema]", "")
    page.click(f"{form} button[type=submit]")
    assert field_error(page, "name") == f"domain '{taken}' already exists"
    page.fill(f"{form} input[name=name]", unique("typo"))
    page.fill(f"{form} textarea[name=schema]", '{"fields": {"order_id": "strin"}}')
    page.click(f"{form} button[type=submit]")
    assert field_error(page, "schema") == ("schema field 'order_id' has type 'strin'; use one "
                                           "of string, number, boolean, object, array")
    page.fill(f"{form} textarea[name=schema]", '{"type": "objec"}')
    page.click(f"{form} button[type=submit]")
    assert field_error(page, "schema").startswith("schema is not a valid JSON Schema")
    assert page.url.endswith("/ui/domains")  # nothing was made
    listed = {d["name"] for d in http.get("/api/domains").json()["domains"]}
    assert not any(n.startswith("typo-") for n in listed)


def test_deleting_a_domain_needs_its_name_typed(page, open_broker, http):
    doomed = make_domain(http, "doomed", queueConfigs={"q": {}})
    opened(page, open_broker, "/ui/domains", ".domains-page")
    page.click(f"button[data-delete='{doomed}']")
    dialog = page.locator("dialog")
    assert doomed in dialog.inner_text()
    assert dialog.locator("button[value=ok]").is_disabled()
    dialog.locator("button[value=cancel]").click()
    dialog.wait_for(state="detached")
    assert http.get(f"/api/domains/{doomed}").status_code == 200  # cancelled: still there
    page.click(f"button[data-delete='{doomed}']")
    page.fill("dialog input", doomed[:-1])
    assert dialog.locator("button[value=ok]").is_disabled()  # not quite its name
    page.fill("dialog input", doomed)
    dialog.locator("button[value=ok]").click()
    page.wait_for_selector(f"#domain-list tr[data-domain='{doomed}']", state="detached")
    assert http.get(f"/api/domains/{doomed}").status_code == 404


# --- a domain ------------------------------------------------------------------------------------


def test_a_domain_page_shows_its_schema_and_queues_with_their_fill(page, open_broker, http,
                                                                     screenshot):
    domain = make_domain(http, "shop", schema=GO_SCHEMA, queueConfigs={
        "orders": {"maxSize": 10, "retryEnabled": True}, "mails": {"maxSize": 4},
        "audit": {"isPersistent": False, "retention": "interest"}})
    for queue, count in (("orders", 8), ("mails", 4)):
        reply = http.post(f"/api/domains/{domain}/queues/{queue}/messages/batch", json={
            "messages": [{"order_id": str(i), "amount": i} for i in range(count)]})
        assert reply.status_code == 201
    opened(page, open_broker, f"/ui/domains/{domain}", ".domain-page")
    info = http.get(f"/api/domains/{domain}").json()
    assert page.inner_text("#domain-totals [data-stat=queues] .stat-value") == "3"
    assert page.inner_text("#domain-totals [data-stat=messages] .stat-value") == "12"
    for queue in info["queues"]:
        row = page.locator(f"#queues tr[data-queue='{queue['name']}']")
        meter = row.locator(".meter")
        percent = 100 * queue["messageCount"] / queue["config"]["maxSize"]
        assert float(meter.get_attribute("data-percent")) == pytest.approx(percent, abs=0.05)
        assert meter.inner_text() == f"{queue['messageCount']} / {queue['config']['maxSize']:,}"
        assert row.locator("a").get_attribute("href") == f"/ui/domains/{domain}/queues/" \
            + queue["name"]
    levels = {q: page.get_attribute(f"#queues tr[data-queue={q}] .meter", "data-level")
              for q in ("orders", "mails", "audit")}
    assert levels == {"orders": "warning", "mails": "critical", "audit": "ok"}  # 80 %, 100 %
    assert "not persistent" in page.inner_text("#queues tr[data-queue=audit]")
    assert "interest" in page.inner_text("#queues tr[data-queue=audit]")
    assert "retries" in page.inner_text("#queues tr[data-queue=orders]")
    assert '"amount": "number"' in page.inner_text("#schema")
    assert "Not available yet" in page.inner_text("#routes-panel")
    top(page)
    screenshot(page, "domain")


def test_the_queue_form_shows_the_servers_defaults_and_sends_them(page, open_broker, http):
    domain = make_domain(http, "defaults")
    reply = http.post(f"/api/domains/{domain}/queues", json={"name": "plain"})
    defaults = reply.json()["config"]  # what the server fills in when given nothing
    opened(page, open_broker, f"/ui/domains/{domain}", ".domain-page")
    shown = form_values(page)
    for path in SETTINGS:
        assert shown[path] == setting(defaults, path), path
        if isinstance(shown[path], bool):
            continue
        help_text = page.inner_text(f"[data-field='config.{path}'] .field-help")
        assert help_text.startswith("default "), path  # still visible once changed
    page.fill("#create-queue input[name=name]", "made")
    page.click("#create-queue button[type=submit]")
    page.wait_for_url(f"**/ui/domains/{domain}/queues/made")
    made = http.get(f"/api/domains/{domain}/queues/made").json()["config"]
    assert made == defaults


def test_every_setting_of_the_form_is_sent(page, open_broker, http):
    domain = make_domain(http, "every")
    opened(page, open_broker, f"/ui/domains/{domain}", ".domain-page")
    wanted = {"maxSize": 5000, "ttl": "1h30m", "retention": "interest", "isPersistent": False,
              "ackTimeout": "45s", "workerCount": 4, "retryEnabled": True,
              "retryConfig.maxRetries": 7, "retryConfig.initialDelay": "250ms",
              "retryConfig.factor": 1.5, "retryConfig.maxDelay": "2m",
              "circuitBreakerEnabled": True, "circuitBreakerConfig.errorThreshold": 0.25,
              "circuitBreakerConfig.successThreshold": 3,
              "circuitBreakerConfig.minimumRequests": 20,
              "circuitBreakerConfig.openTimeout": "1m"}
    page.fill("#create-queue input[name=name]", "tuned")
    for path, value in wanted.items():
        selector = f"#create-queue [name='config.{path}']"
        if isinstance(value, bool):
            page.set_checked(selector, value)
        elif path == "retention":
            page.select_option(selector, value)
        else:
            page.fill(selector, str(value))
    page.click("#create-queue button[type=submit]")
    page.wait_for_url(f"**/ui/domains/{domain}/queues/tuned")
    page.wait_for_selector(".queue-page[data-ready=true]")
    config = http.get(f"/api/domains/{domain}/queues/tuned").json()["config"]
    for path, value in wanted.items():
        assert setting(config, path) == value, path
    # the queue page lists them as the API has them
    assert page.inner_text("#config [data-key=maxSize] dd") == "5,000"
    assert page.inner_text("#config [data-key=retention] dd") == "interest"
    assert "maxRetries 7" in page.inner_text("#config [data-key=retryConfig] dd")


def test_a_refused_setting_is_named_at_its_field(page, open_broker, http, errors):
    errors.allow(r"status of (400|409)")
    domain = make_domain(http, "refused", queueConfigs={"taken": {}})
    opened(page, open_broker, f"/ui/domains/{domain}", ".domain-page")
    form = "#create-queue"
    # the page's own checks first
    page.fill(f"{form} input[name=name]", "fine")
    page.fill(f"{form} [name='config.maxSize']", "0")
    page.fill(f"{form} [name='config.ttl']", "24 hours")
    page.click(f"{form} button[type=submit]")
    assert field_error(page, "config.maxSize") == "maxSize must be between 1 and 1099511627776"
    assert field_error(page, "config.ttl").startswith("ttl must be a duration")
    page.click(f"{form} button:text-is('Reset to defaults')")
    assert page.input_value(f"{form} [name='config.maxSize']") == "1000"
    assert page.locator(f"{form} .field-error:visible").count() == 0
    # the server's: past 100 years, which only it knows, at the field it names
    page.fill(f"{form} [name='config.retryConfig.maxDelay']", "1000000h")
    page.click(f"{form} button[type=submit]")
    assert field_error(page, "config.retryConfig.maxDelay") == (
        'config.retryConfig.maxDelay must be a duration like "500ms", "30s", "1h30m" or "0"')
    page.click(f"{form} button:text-is('Reset to defaults')")
    page.fill(f"{form} input[name=name]", "taken")
    page.click(f"{form} button[type=submit]")
    assert field_error(page, "name") == f"queue 'taken' already exists in domain '{domain}'"
    assert [q["name"] for q in http.get(f"/api/domains/{domain}/queues").json()["queues"]] == \
        ["taken"]


def test_deleting_a_queue_and_a_domain_from_the_domain_page(page, open_broker, http):
    domain = make_domain(http, "tidy", queueConfigs={"keep": {}, "drop": {}})
    opened(page, open_broker, f"/ui/domains/{domain}", ".domain-page")
    page.click("button[data-delete=drop]")
    page.fill("dialog input", "drop")
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#queues tr[data-queue=drop]", state="detached")
    assert [q["name"] for q in http.get(f"/api/domains/{domain}/queues").json()["queues"]] == \
        ["keep"]
    page.click("#delete-domain")
    page.fill("dialog input", domain)
    page.click("dialog button[value=ok]")
    page.wait_for_url("**/ui/domains")
    page.wait_for_selector(".domains-page[data-ready=true]")
    assert page.locator(f"#domain-list tr[data-domain='{domain}']").count() == 0
    assert http.get(f"/api/domains/{domain}").status_code == 404


def test_an_unknown_domain_is_the_servers_404(page, open_broker, errors):
    errors.allow(r"status of 404")
    page.goto(open_broker.url + "/ui/domains/no-such-domain")
    page.wait_for_selector("main[data-page=domain] .notice-error")
    assert "domain 'no-such-domain' not found" in page.inner_text("main .notice-error")
    assert page.locator("#create-queue").count() == 0


# --- addresses and the back button ---------------------------------------------------------------


def test_links_lead_down_and_the_back_button_comes_back(page, open_broker, http):
    domain = make_domain(http, "walk", queueConfigs={"orders.v1": {}})
    opened(page, open_broker, "/ui/domains", ".domains-page")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    page.click(f"#domain-list a[href='/ui/domains/{domain}']")
    page.wait_for_selector(".domain-page[data-ready=true]")
    page.click("#queues a:text-is('orders.v1')")
    page.wait_for_url(f"**/ui/domains/{domain}/queues/orders.v1")
    page.wait_for_selector(".queue-page[data-ready=true]")
    assert page.title() == f"orders.v1 · {domain} · GoRTMS"
    page.go_back()
    page.wait_for_url(f"**/ui/domains/{domain}")
    page.wait_for_selector(".domain-page[data-ready=true]")
    page.go_back()
    page.wait_for_url("**/ui/domains")
    page.wait_for_selector(".domains-page[data-ready=true]")
    page.go_forward()
    page.wait_for_selector(".domain-page[data-ready=true]")
    page.click(".breadcrumbs a[href='/ui/domains']")
    page.wait_for_selector(".domains-page[data-ready=true]")
    assert page.evaluate("window.sameDocument") is True
    # each address opens directly too
    for path, ready in ((f"/ui/domains/{domain}", ".domain-page"),
                        (f"/ui/domains/{domain}/queues/orders.v1", ".queue-page")):
        opened(page, open_broker, path, ready)
        assert page.url == open_broker.url + path
