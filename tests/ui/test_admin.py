"""Administration in the web UI (issue 11, point 6) against real brokers: users, account
requests, service accounts (the secret shown once, copied, and working; permissions built;
rotation; deletion), settings (the config file changed, what is live and what waits for a
restart, refusals at their key, reset) and the routing rules the broker does not have yet.

The broker here has authentication on and was started with a config file (the settings page
needs one), without the harness's GORTMS_* variables so that the file decides. An admin and
a non-admin sign in: only the admin sees the navigation entry, and the other gets the
server's 403 at every admin address. open_broker (authentication off, no config file) shows
what the pages say then."""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import httpx2
import pytest
import yaml

from tests.broker import ROOT, Broker, unique
from tests.broker import launch as run_broker
from tests.ui.conftest import ADMIN, admin_headers, bootstrap_admin, sign_in

REJECTED = r"status of 4\d\d"  # Chromium's console line for an answer the UI then shows
CONFIG = """\
# the broker of tests/ui/test_admin.py
general:
  dataDir: "{data}"
  logLevel: info
http:
  port: 0
  maxBodyBytes: 1048576
shards:
  count: 2
gateway:
  workers: 1
security:
  enableAuthentication: true
"""
USER, USER_PASSWORD = "uma", "a user's passphrase"


def launch(tmp: Path) -> tuple[Broker, Path]:
    """`gortms serve` with GORTMS_CONFIG and no other GORTMS_* variable."""
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(data=tmp / "data"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GORTMS_")}
    env["GORTMS_CONFIG"] = str(config)
    return run_broker([sys.executable, "-m", "gortms", "serve"], env, ROOT, tmp / "data"), config


@pytest.fixture(scope="module")
def admin_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker, config = launch(tmp_path_factory.mktemp("ui-admin"))
    broker.config = config  # type: ignore[attr-defined]
    bootstrap_admin(broker)
    with broker.client() as api:
        made = api.post("/api/admin/users", headers=admin_headers(api),
                        json={"username": USER, "password": USER_PASSWORD, "role": "user"})
        assert made.status_code == 201, made.text
    yield broker
    assert broker.stop() == 0, broker.output()


@pytest.fixture(scope="module")
def api(admin_broker: Broker) -> Iterator[httpx2.Client]:
    with admin_broker.client() as client:
        client.headers.update(admin_headers(client))
        yield client


def signed(broker: Broker, service_id: str, secret: str, path: str) -> httpx2.Response:
    """A GET signed as docs/security.md says, with no other credential."""
    stamp = datetime.now(timezone.utc).isoformat()
    digest = hmac.new(secret.encode(), f"GET\n{path}\n\n{stamp}".encode(),
                      hashlib.sha256).hexdigest()
    with broker.client() as client:
        return client.get(path, headers={"X-Service-ID": service_id, "X-Timestamp": stamp,
                                         "X-Signature": f"sha256={digest}"})


def users_by_name(api: httpx2.Client) -> dict[str, dict]:
    return {u["username"]: u for u in api.get("/api/admin/users").json()["users"]}


def stray_text(page) -> list[str]:
    """Text nodes appended straight into <main> (a null written as "null", say)."""
    return page.evaluate("() => [...document.querySelector('main').childNodes]"
                         ".filter(n => n.nodeType === 3).map(n => n.textContent)")


def as_admin(page, broker: Broker, at: str, ready: str) -> None:
    sign_in(page, broker, at=at)
    page.wait_for_selector(ready)


# --- who sees it --------------------------------------------------------------------------------


def test_only_admins_see_administration_and_others_get_the_servers_403(
        page, admin_broker, errors, screenshot):
    errors.allow(REJECTED)
    with admin_broker.client() as client:
        token = client.post("/api/auth/login", json={"username": USER,
                                                     "password": USER_PASSWORD}).json()["token"]
        refused = client.get("/api/admin/users", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    sign_in(page, admin_broker, USER, USER_PASSWORD)
    page.wait_for_selector("main[data-page=dashboard]")
    assert page.locator("nav a[data-nav=admin]").count() == 0
    assert page.locator("header.topbar nav a").count() == 3
    for address, module in (("/ui/admin/users", "admin-users"), ("/ui/admin", "admin-overview"),
                            ("/ui/admin/account-requests", "admin-requests"),
                            ("/ui/admin/services", "admin-services"),
                            ("/ui/admin/settings", "admin-settings")):
        page.goto(admin_broker.url + address)
        page.wait_for_selector(f"main[data-page={module}] .notice-error")
        shown = page.inner_text("main .notice-error")
        assert refused.json()["message"] in shown and "forbidden" in shown, address
    screenshot(page, "admin-forbidden")


def test_the_overview_counts_what_the_broker_holds_and_tabs_go_back(page, admin_broker, api,
                                                                    screenshot):
    as_admin(page, admin_broker, "/ui/admin", "main[data-page=admin-overview] #admin-overview")
    assert page.get_attribute("nav a[data-nav=admin]", "aria-current") == "page"
    users = api.get("/api/admin/users").json()["users"]
    pending = api.get("/api/admin/account-requests", params={"status": "pending"}).json()
    services = api.get("/api/services").json()
    overview = "#admin-overview [data-stat={}] .stat-value"
    assert page.inner_text(overview.format("users")) == str(len(users))
    assert page.inner_text(overview.format("requests")) == str(pending["count"])
    assert page.inner_text(overview.format("services")) == str(services["count"])
    assert page.inner_text(overview.format("settings")) in ("in effect", "restart needed")
    assert stray_text(page) == []
    screenshot(page, "admin")
    page.click(".admin-tabs a[data-tab=users]")
    page.wait_for_selector("main[data-page=admin-users] #users tbody tr")
    page.click(".admin-tabs a[data-tab=services]")
    page.wait_for_selector("main[data-page=admin-services] #services")
    page.go_back()
    page.wait_for_selector("main[data-page=admin-users] #users tbody tr")
    assert page.url.endswith("/ui/admin/users")
    assert page.get_attribute(".admin-tabs a[data-tab=users]", "aria-current") == "page"


# --- users --------------------------------------------------------------------------------------


def test_users_are_listed_created_and_changed(page, admin_broker, api, errors, screenshot):
    errors.allow(REJECTED)
    as_admin(page, admin_broker, "/ui/admin/users", "main[data-page=admin-users] #users tbody tr")
    for user in api.get("/api/admin/users").json()["users"]:
        row = page.locator(f"#users tr[data-user='{user['username']}']")
        assert row.locator("select.role-select").input_value() == user["role"]
    assert "(you)" in page.inner_text(f"#users tr[data-user={ADMIN}]")
    name = unique("ivan")[:20]
    page.fill("#create-user input[name=username]", name)
    page.fill("#create-user input[name=password]", "short")
    page.click("#create-user button[type=submit]")
    assert "at least 8" in page.inner_text("#create-user [data-field=password] .field-error")
    page.fill("#create-user input[name=password]", "a long passphrase")
    page.click("#create-user button[type=submit]")
    page.wait_for_selector(f"#users tr[data-user='{name}']")
    made = users_by_name(api)[name]
    assert made["role"] == "user" and made["disabled"] is False
    # the same name again: the server's 409 at the username
    page.fill("#create-user input[name=username]", name)
    page.fill("#create-user input[name=password]", "a long passphrase")
    page.click("#create-user button[type=submit]")
    page.wait_for_selector("#create-user [data-field=username] .field-error:not([hidden])")
    assert page.inner_text("#create-user [data-field=username] .field-error") == \
        f"username '{name}' is taken"
    row = f"#users tr[data-user='{name}']"
    page.select_option(f"{row} select.role-select", "admin")
    page.wait_for_selector(f".toast:has-text('{name} is now admin')")
    assert users_by_name(api)[name]["role"] == "admin"
    page.click(f"{row} button[data-action=disable]")
    assert "every token it holds stops working" in page.inner_text("dialog[open]")
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector(f"{row} button[data-action=enable]")
    assert "disabled" in page.inner_text(row)
    assert users_by_name(api)[name]["disabled"] is True
    screenshot(page, "admin-users")
    page.click(f"{row} button[data-action=enable]")  # no question to undo it
    page.wait_for_selector(f"{row} button[data-action=disable]")
    assert users_by_name(api)[name]["disabled"] is False


# --- account requests ---------------------------------------------------------------------------


def test_account_requests_are_approved_rejected_filtered_and_deleted(page, admin_broker, api,
                                                                     screenshot):
    names = [unique(p)[:20] for p in ("ann", "bob", "cy")]
    for name in names:
        asked = api.post("/api/account-requests", json={"username": name,
                                                        "password": "a long passphrase"})
        assert asked.status_code == 201, asked.text
    ann, bob, cy = names
    as_admin(page, admin_broker, "/ui/admin/account-requests?status=pending",
             f"main[data-page=admin-requests] #requests tr[data-request='{ann}']")
    assert page.input_value("select[aria-label=Status]") == "pending"
    pending = api.get("/api/admin/account-requests", params={"status": "pending"}).json()
    assert page.locator("#requests tbody tr").count() == pending["count"] >= 3
    screenshot(page, "admin-account-requests")
    page.select_option(f"#requests tr[data-request='{ann}'] select.role-select", "admin")
    page.click(f"#requests tr[data-request='{ann}'] button[data-action=approve]")
    page.wait_for_selector(f"#requests tr[data-request='{ann}']", state="detached")  # not pending
    assert users_by_name(api)[ann]["role"] == "admin"
    page.click(f"#requests tr[data-request='{bob}'] button[data-action=reject]")
    page.fill("dialog[open] textarea[name=rejectReason]", "not on the team")
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector(f"#requests tr[data-request='{bob}']", state="detached")
    every = {r["username"]: r for r in api.get("/api/admin/account-requests").json()["requests"]}
    assert every[ann]["status"] == "approved" and every[ann]["approvedRole"] == "admin"
    assert every[bob]["status"] == "rejected" and every[bob]["rejectReason"] == "not on the team"
    assert bob not in users_by_name(api)
    page.select_option("select[aria-label=Status]", "")
    page.wait_for_function("() => location.search === ''")
    page.wait_for_selector(f"#requests tr[data-request='{bob}'][data-status=rejected]")
    assert "not on the team" in page.inner_text(f"#requests tr[data-request='{bob}']")
    approved = f"#requests tr[data-request='{ann}'][data-status=approved]"
    assert "role admin" in page.inner_text(approved)
    assert page.locator(f"#requests tr[data-request='{cy}'][data-status=pending]").count() == 1
    page.select_option("select[aria-label=Status]", "rejected")
    page.wait_for_function("() => location.search === '?status=rejected'")
    page.wait_for_selector(f"#requests tr[data-request='{cy}']", state="detached")
    statuses = page.locator("#requests tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)")
    assert statuses and set(statuses) == {"rejected"}
    page.click(f"#requests tr[data-request='{bob}'] button[data-action=delete]")
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector(f"#requests tr[data-request='{bob}']", state="detached")
    assert api.get(f"/api/admin/account-requests/{every[bob]['id']}").status_code == 404
    page.reload()  # the filter is in the address
    page.wait_for_selector("main[data-page=admin-requests] #requests-count")
    assert page.input_value("select[aria-label=Status]") == "rejected"


# --- service accounts ---------------------------------------------------------------------------


def test_a_service_account_is_made_with_its_secret_shown_once(page, admin_broker, api, errors,
                                                              screenshot):
    errors.allow(REJECTED)
    domain = unique("svc")
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                   origin=admin_broker.url)
    as_admin(page, admin_broker, "/ui/admin/services", "main[data-page=admin-services] #services")
    name = unique("billing-svc")
    form = "#create-service"
    page.fill(f"{form} input[name=name]", name)
    page.fill(f"{form} input[name=description]", "charges cards")
    page.click(f"{form} button.perm-add")
    page.select_option(f"{form} .perm-row >> nth=0 >> select", "consume")
    page.fill(f"{form} .perm-row >> nth=0 >> input", domain)
    page.click(f"{form} button.perm-add")
    page.select_option(f"{form} .perm-row >> nth=1 >> select", "publish")
    page.fill(f"{form} .perm-row >> nth=1 >> input", "bad name")
    page.click(f"{form} button[type=submit]")  # checked before sending
    assert "must be * or a name" in page.inner_text(f"{form} [data-field=permissions] .field-error")
    page.fill(f"{form} .perm-row >> nth=1 >> input", "*")
    assert page.locator(f"{form} .perm-preview code").all_inner_texts() == [
        f"consume:{domain}", "publish:*"]
    page.fill(f"{form} textarea[name=ipAllowlist]", "not an address")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(f"{form} [data-field=ipAllowlist] .field-error:not([hidden])")
    assert "not an address" in page.inner_text(f"{form} [data-field=ipAllowlist] .field-error")
    page.fill(f"{form} textarea[name=ipAllowlist]", "127.0.0.1\n10.0.*")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#secret .secret-reveal")
    assert "you will not see it again" in page.inner_text("#secret")
    secret = page.inner_text("#secret .secret-value")
    service_id = page.inner_text("#secret .secret-id")
    page.click("#secret button.secret-copy")
    page.wait_for_selector("#secret button.secret-copy[data-copied=true]")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    assert stray_text(page) == []
    screenshot(page, "admin-services-secret")
    stored = api.get(f"/api/services/{service_id}").json()
    assert stored["name"] == name and stored["description"] == "charges cards"
    assert stored["permissions"] == [f"consume:{domain}", "publish:*"]
    assert stored["ipAllowlist"] == ["127.0.0.1", "10.0.*"]
    assert "secret" not in stored
    answer = signed(admin_broker, service_id, secret, f"/api/domains/{domain}")
    assert answer.status_code == 200, answer.text  # the secret shown is the one that works
    page.click("#secret button:text-is('I have stored it')")
    page.wait_for_selector("#secret .secret-reveal", state="detached")
    page.reload()
    page.wait_for_selector(f"#services tr[data-service='{name}']")
    assert secret not in page.content()  # never again


def test_permissions_rotation_and_deletion_of_a_service_account(page, admin_broker, api,
                                                                screenshot):
    domain = unique("rot")
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    name = unique("mailer")
    made = api.post("/api/services", json={"name": name, "permissions": ["publish:*"]}).json()
    as_admin(page, admin_broker, "/ui/admin/services", f"#services tr[data-service='{name}']")
    row = f"#services tr[data-service='{name}']"
    page.click(f"{row} button[data-action=edit]")
    editor = "#edit-permissions"
    assert page.locator(f"{editor} .perm-preview code").all_inner_texts() == ["publish:*"]
    page.click(f"{editor} button.perm-add")
    page.select_option(f"{editor} .perm-row >> nth=1 >> select", "*")
    page.fill(f"{editor} .perm-row >> nth=1 >> input", domain)
    page.fill(f"{editor} textarea[name=ipAllowlist]", "127.0.0.0/8")
    screenshot(page, "admin-services")
    page.click(f"{editor} button[type=submit]")
    page.wait_for_selector(f"{editor} form", state="detached")
    changed = api.get(f"/api/services/{made['id']}").json()
    assert changed["permissions"] == ["publish:*", f"*:{domain}"]
    assert changed["ipAllowlist"] == ["127.0.0.0/8"]
    page.wait_for_selector(f"{row} code.perm:text-is('*:{domain}')")
    # rotate: asked first, the new secret shown once; the old one stops at once
    page.click(f"{row} button[data-action=rotate]")
    assert "old one stops working at once" in page.inner_text("dialog[open]")
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector("#secret .secret-reveal")
    assert "rotated just now" in page.inner_text("#secret")
    fresh = page.inner_text("#secret .secret-value")
    assert fresh != made["secret"]
    assert signed(admin_broker, made["id"], made["secret"], f"/api/domains/{domain}"
                  ).status_code == 401
    assert signed(admin_broker, made["id"], fresh, f"/api/domains/{domain}").status_code == 200
    # delete: the name must be typed
    page.click(f"{row} button[data-action=delete]")
    assert page.locator("dialog[open] button[value=ok]").is_disabled()
    page.fill("dialog[open] input.confirm-input", name)
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector(row, state="detached")
    assert api.get(f"/api/services/{made['id']}").status_code == 404


# --- settings -----------------------------------------------------------------------------------


def field(key: str) -> str:
    return f"#settings [data-field='{key}']"


def test_settings_change_the_file_and_say_what_waits_for_a_restart(page, admin_broker, api,
                                                                   errors, screenshot):
    errors.allow(REJECTED)
    config: Path = admin_broker.config  # type: ignore[attr-defined]
    as_admin(page, admin_broker, "/ui/admin/settings", "main[data-page=admin-settings] #settings")
    current = api.get("/api/admin/settings").json()
    assert page.inner_text("#settings-file") == current["file"] == str(config)
    assert page.input_value(f"{field('general.logLevel')} select") == "info"
    assert page.input_value(f"{field('http.maxBodyBytes')} input") == "1048576"
    assert page.input_value(f"{field('shards.count')} input") == "2"
    assert page.is_checked(f"{field('security.enableAuthentication')} input")
    assert "default (not in the file)" in page.inner_text(field("http.maxHeaderBytes"))
    assert "default" not in page.inner_text(field("http.maxBodyBytes"))
    screenshot(page, "admin-settings")
    page.click("#settings button[type=submit]")  # nothing changed, nothing sent
    page.wait_for_selector("text=Nothing changed")
    page.select_option(f"{field('general.logLevel')} select", "debug")
    page.fill(f"{field('http.maxBodyBytes')} input", "2097152")
    page.click("#settings button[type=submit]")
    page.wait_for_selector("#settings-outcome")
    assert page.get_attribute("#settings-outcome [data-applied]", "data-applied") == \
        "general.logLevel"
    assert "http.maxBodyBytes" in page.get_attribute("#settings-outcome [data-restart]",
                                                     "data-restart")
    page.wait_for_selector(f"{field('http.maxBodyBytes')} .badge:text-is('restart pending')")
    after = api.get("/api/admin/settings").json()
    assert after["settings"]["general"]["logLevel"] == "debug"
    assert after["effective"]["general"]["logLevel"] == "debug"  # live
    assert after["effective"]["http"]["maxBodyBytes"] == 1048576  # after a restart
    on_disk = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert on_disk["http"]["maxBodyBytes"] == 2097152
    assert "# the broker of tests/ui/test_admin.py" in config.read_text(encoding="utf-8")
    # a refusal: at its key, and nothing written
    before = config.read_text(encoding="utf-8")
    page.fill(f"{field('http.port')} input", "70000")
    page.click("#settings button[type=submit]")
    page.wait_for_selector(f"{field('http.port')} .field-error:not([hidden])")
    refused = api.put("/api/admin/settings", json={"http": {"port": 70000}}).json()
    assert page.inner_text(f"{field('http.port')} .field-error") == refused["message"]
    assert refused["message"].startswith("http.port")
    assert config.read_text(encoding="utf-8") == before
    # reset: the name typed, then the defaults back
    page.fill(f"{field('http.port')} input", "0")
    page.click("#settings button:text-is('Reset to defaults…')")
    assert page.locator("dialog[open] button[value=ok]").is_disabled()
    page.fill("dialog[open] input.confirm-input", "reset")
    page.click("dialog[open] button[value=ok]")
    page.wait_for_selector("#settings-outcome:has-text('Reset')")
    assert page.get_attribute("#settings-outcome [data-applied]", "data-applied") == \
        "general.logLevel"
    reset = api.get("/api/admin/settings").json()
    assert reset["settings"]["general"]["logLevel"] == "info"
    assert reset["settings"]["http"]["maxBodyBytes"] == 1048576
    assert reset["settings"]["security"]["enableAuthentication"] is True  # kept by a reset
    assert page.input_value(f"{field('general.logLevel')} select") == "info"


def test_routing_rules_say_they_do_not_exist_yet(page, admin_broker, screenshot):
    as_admin(page, admin_broker, "/ui/admin/routing-rules",
             "main[data-page=admin-routing] #routing-rules")
    text = page.inner_text("#routing-rules .notice-unavailable")
    assert text.startswith("Not available yet: routing rules.")
    assert "400 unsupported" in text
    assert page.locator("#routing-rules table").count() == 0  # nothing made up
    screenshot(page, "admin-routing-rules")


# --- with authentication off --------------------------------------------------------------------


def test_with_authentication_off_the_pages_say_so_and_still_work(page, open_broker,
                                                                 screenshot):
    with open_broker.client() as client:
        users = client.get("/api/admin/users").json()["users"]
    page.goto(open_broker.url + "/ui/admin/users")
    page.wait_for_selector("main[data-page=admin-users] #users")
    assert "only matter with" in page.inner_text("#authentication-off")
    assert page.locator("#users tbody tr").count() == len(users)
    page.goto(open_broker.url + "/ui/admin/services")
    page.wait_for_selector("main[data-page=admin-services] #authentication-off")
    page.goto(open_broker.url + "/ui/admin/settings")
    page.wait_for_selector("main[data-page=admin-settings] #no-config-file")
    assert page.inner_text("#no-config-file").startswith("Started without a config file.")
    assert page.locator("#settings button[type=submit]").count() == 0
    assert page.is_disabled(f"{field('http.maxBodyBytes')} input")
    assert "GORTMS_HTTP_PORT sets it" in page.inner_text(field("http.port"))
    screenshot(page, "admin-settings-no-file")
