"""The web UI's shell (issue 11, points 1 and 7): how the gateway serves it, addresses that
open directly, the History API router, sign-in with authentication on and none with it off."""

from __future__ import annotations

import re

import httpx2
import pytest

from tests.broker import unique
from tests.ui.conftest import admin_headers, sign_in

# Addresses of issue 11, point 7 (the pages other than the dashboard come with later work:
# until then the router shows its not-found page there, inside the shell).
ADDRESSES = ["/ui/", "/ui/domains", "/ui/domains/shop", "/ui/domains/shop/queues/orders.v1",
             "/ui/domains/shop/queues/orders.v1/groups/billing", "/ui/consumer-groups",
             "/ui/admin", "/ui/admin/users"]
REJECTED = r"status of 401"  # Chromium's console line for an answer the UI then shows


@pytest.fixture(scope="module")
def http(open_broker):
    with open_broker.client() as client:
        yield client


# --- serving (no browser) -----------------------------------------------------------------------


def test_ui_redirects_to_ui_slash(http):
    reply = http.get("/ui", follow_redirects=False)
    assert reply.status_code in (301, 302, 307, 308)
    assert reply.headers["location"] == "/ui/"


def test_every_app_address_is_the_html_shell_under_a_strict_policy(http):
    for address in ADDRESSES + ["/ui/index.html", "/ui/no/such/page"]:
        reply = http.get(address)
        assert reply.status_code == 200, address
        assert reply.headers["content-type"] == "text/html; charset=utf-8", address
        assert reply.headers["cache-control"] == "no-cache"
        policy = reply.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self' ws: wss:" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert reply.headers["x-content-type-options"] == "nosniff"
        # no inline script or style: every script is a file, and there is no <style>
        scripts = re.findall(r"<script\b[^>]*>", reply.text)
        assert scripts and all(" src=" in tag for tag in scripts), scripts
        assert "<style" not in reply.text and " style=" not in reply.text


def test_health_says_whether_authentication_is_on(http, secure_broker):
    assert http.get("/api/health").json()["authentication"] is False
    assert httpx2.get(secure_broker.url + "/api/health").json()["authentication"] is True


def test_assets_have_their_content_types_and_the_right_caching(http):
    html = http.get("/ui/").text
    versioned = re.search(r'href="(/ui/assets/[0-9a-f]+)/app\.css"', html)
    assert versioned, html
    prefix = versioned.group(1)
    for path, content_type in (("app.css", "text/css; charset=utf-8"),
                               ("js/main.js", "text/javascript; charset=utf-8"),
                               ("js/pages/dashboard.js", "text/javascript; charset=utf-8"),
                               ("favicon.svg", "image/svg+xml")):
        plain = http.get(f"/ui/{path}")
        assert plain.status_code == 200 and plain.headers["content-type"] == content_type, path
        assert plain.headers["cache-control"] == "no-cache"
        cached = http.get(f"{prefix}/{path}")
        assert cached.content == plain.content
        assert cached.headers["cache-control"] == "public, max-age=31536000, immutable"
        again = http.get(f"/ui/{path}", headers={"If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert http.head(f"/ui/{path}").status_code == 200


def test_a_missing_asset_is_a_404_error_not_the_app(http):
    for path in ("/ui/js/nope.js", "/ui/nope.css", "/ui/js", "/ui/assets/0123/js/nope.js",
                 "/ui/js/../../gateway/app.py"):
        reply = http.get(path)
        assert reply.status_code == 404, path
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["error"] == "not_found" and reply.json()["message"], path


# --- the router ---------------------------------------------------------------------------------


def test_every_address_opens_directly_in_the_shell(page, open_broker, http, screenshot):
    # What the addresses name exists, so each page shows it (not the API's 404).
    if http.get("/api/domains/shop").status_code == 404:
        assert http.post("/api/domains", json={"name": "shop"}).status_code == 201
        assert http.post("/api/domains/shop/queues",
                         json={"name": "orders.v1"}).status_code == 201
        assert http.post("/api/domains/shop/queues/orders.v1/consumer-groups",
                         json={"groupId": "billing"}).status_code == 201
    for address in ADDRESSES:
        page.goto(open_broker.url + address)
        page.wait_for_selector("main[data-page]")
        assert page.url == open_broker.url + address  # no redirect: the address holds
        assert page.locator("header.topbar nav a").count() == 4
        assert page.title().endswith("GoRTMS")
    page.goto(open_broker.url + "/ui")
    page.wait_for_selector("main[data-page=dashboard]")
    assert page.url == open_broker.url + "/ui/"


def test_links_navigate_without_a_reload_and_back_and_forward_work(page, open_broker):
    page.goto(open_broker.url + "/ui/")
    page.wait_for_selector("main[data-page=dashboard]")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page
    page.click("nav a[data-nav=domains]")
    page.wait_for_url("**/ui/domains")
    assert page.get_attribute("nav a[data-nav=dashboard]", "aria-current") is None
    page.click("nav a[data-nav=groups]")
    page.wait_for_url("**/ui/consumer-groups")
    page.go_back()
    page.wait_for_url("**/ui/domains")
    page.go_back()
    page.wait_for_url(re.compile(r"/ui/$"))
    page.wait_for_selector("main[data-page=dashboard]")
    assert page.get_attribute("nav a[data-nav=dashboard]", "aria-current") == "page"
    page.go_forward()
    page.wait_for_url("**/ui/domains")
    assert page.evaluate("window.sameDocument") is True


def test_an_unknown_address_shows_the_not_found_page(page, open_broker, screenshot):
    page.goto(open_broker.url + "/ui/no/such/page")
    page.wait_for_selector("main[data-page=not-found]")
    assert page.inner_text("main h1") == "No such page"
    assert "/ui/no/such/page" in page.inner_text("main")
    assert page.title() == "Not found · GoRTMS"
    screenshot(page, "not-found")
    page.click("main a[href='/ui/']")
    page.wait_for_selector("main[data-page=dashboard]")


# --- signing in ---------------------------------------------------------------------------------


def test_with_authentication_off_nothing_asks_to_sign_in(page, open_broker):
    page.goto(open_broker.url + "/ui/")
    page.wait_for_selector("main[data-page=dashboard]")
    assert page.locator("text=Sign out").count() == 0
    assert page.inner_text("header .account").endswith("authentication off")
    page.goto(open_broker.url + "/ui/signin")
    page.wait_for_selector("main[data-page=dashboard]")
    assert page.url == open_broker.url + "/ui/"
    assert page.locator("input[type=password]").count() == 0


def test_sign_in_shows_the_servers_message_then_lands_where_it_was_going(
        page, secure_broker, errors, screenshot):
    errors.allow(REJECTED)
    with secure_broker.client() as api:
        expected = api.post("/api/auth/login", json={"username": "root", "password": "wrong!!!"})
    assert expected.status_code == 401
    page.goto(secure_broker.url + "/ui/domains?from=bookmark")
    page.wait_for_selector("main[data-page=signin]")
    assert "next=" in page.url
    assert page.locator("header.topbar").is_hidden()  # no navigation before signing in
    screenshot(page, "signin")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "wrong!!!")
    page.click("button[type=submit]")
    page.wait_for_selector(".form-error:not([hidden])")
    assert expected.json()["message"] in page.inner_text(".form-error")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/domains?from=bookmark")
    assert "root" in page.inner_text("header .account")
    page.click("nav a[data-nav=dashboard]")
    page.wait_for_selector("#totals [data-stat=queues]")  # the API answered with the token
    page.click("text=Sign out")
    page.wait_for_selector("main[data-page=signin]")
    page.goto(secure_broker.url + "/ui/")
    page.wait_for_selector("main[data-page=signin]")  # the session is gone


def test_a_session_the_server_rejects_sends_to_sign_in_and_back(page, secure_broker, errors):
    errors.allow(REJECTED)
    sign_in(page, secure_broker)
    page.wait_for_selector("main[data-page=dashboard] #totals [data-stat=queues]")
    page.evaluate("""() => {
        const saved = JSON.parse(sessionStorage.getItem('gortms.session'));
        saved.token = 'not-a-token';
        sessionStorage.setItem('gortms.session', JSON.stringify(saved));
    }""")
    page.select_option("select[aria-label=Period]", "6h")  # the next request gets a 401
    page.wait_for_selector("main[data-page=signin]")
    assert "next=%2Fui%2F" in page.url
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("main[data-page=dashboard] #totals [data-stat=queues]")


def test_an_account_request_from_the_sign_in_page_reaches_the_admins(page, secure_broker, errors,
                                                                     screenshot):
    errors.allow(r"status of 409")
    name = unique("dana")[:30]
    page.goto(secure_broker.url + "/ui/signin")
    page.click("text=Request an account")
    page.wait_for_selector("main[data-page=request-account]")
    page.fill("input[name=username]", name)
    page.fill("input[name=email]", "dana@example.com")
    page.fill("input[name=password]", "short")
    page.fill("input[name=confirm]", "short")
    page.click("button[type=submit]")
    # checked before sending, shown at the field
    assert "at least 8 characters" in page.inner_text("[data-field=password] .field-error")
    screenshot(page, "request-account")
    page.fill("input[name=password]", "a long passphrase")
    page.fill("input[name=confirm]", "a long passphrase")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Request sent")
    with secure_broker.client() as api:
        listed = api.get("/api/admin/account-requests", headers=admin_headers(api)).json()
    mine = [r for r in listed["requests"] if r["username"] == name]
    assert len(mine) == 1 and mine[0]["status"] == "pending"
    assert mine[0]["email"] == "dana@example.com"
    # the same name again: the server's 409 is shown at the username
    page.goto(secure_broker.url + "/ui/request-account")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "a long passphrase")
    page.fill("input[name=confirm]", "a long passphrase")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-field=username] .field-error:not([hidden])")
    assert "already pending" in page.inner_text("[data-field=username] .field-error")


# --- the shared components (js/components.js), as docs/UI.md describes them ---------------------

COMPONENTS = """async () => {
  const base = document.querySelector('script[type=module]').src.replace(/main\\.js$/, '');
  const c = await import(base + 'components.js');
  const {ApiError} = await import(base + 'api.js');
  const main = document.querySelector('main');
  const out = {};
  const rows = Array.from({length: 120}, (_, i) => ({n: 120 - i}));
  const t = c.table([{label: 'N', value: (r) => String(r.n), sort: (r) => r.n, numeric: true}],
                    {rows, limit: 50});
  main.append(t.el);
  out.rows = t.el.querySelectorAll('tbody tr').length;
  t.el.querySelector('th button').click();
  out.first = t.el.querySelector('tbody td').textContent;
  t.el.querySelector('button.more').click();
  out.more = t.el.querySelectorAll('tbody tr').length;
  const editor = c.jsonEditor({value: '{\\n "a": 1,\\n}'});
  main.append(editor.el);
  out.json = [editor.valid(), editor.check(), editor.el.querySelector('.field-error').textContent];
  const f = c.form({fields: [{name: 'config.maxSize', label: 'Max size', type: 'number'},
                             {name: 'name', label: 'Name', required: true}],
    onSubmit: async () => {
      throw new ApiError(400, 'invalid_config', 'config.maxSize must be an integer >= 1');
    }});
  main.append(f.el);
  f.el.querySelector('button[type=submit]').click();  // Name is required: not sent
  out.required = f.el.querySelector('[data-field=name] .field-error').textContent;
  f.fields.name.input.value = 'q';
  f.el.querySelector('button[type=submit]').click();
  await new Promise((resolve) => setTimeout(resolve, 0));
  out.server = f.el.querySelector('[data-field="config.maxSize"] .field-error').textContent;
  main.append(c.notAvailable('routing rules', 'the broker has none yet'));
  const asked = c.confirmDialog({title: 'Delete q1?', message: 'It goes.', typeToConfirm: 'q1'});
  const dialog = document.querySelector('dialog');
  const ok = dialog.querySelector('button[value=ok]');
  out.locked = ok.disabled;
  dialog.querySelector('input').value = 'q1';
  dialog.querySelector('input').dispatchEvent(new Event('input'));
  out.unlocked = !ok.disabled;
  ok.click();
  out.confirmed = await asked;
  const cancelled = c.confirmDialog({title: 'Delete?', message: 'It goes.'});
  document.querySelector('dialog button[value=cancel]').click();
  out.cancelled = await cancelled;
  return out;
}"""


def test_the_shared_components_behave_as_documented(page, open_broker):
    page.goto(open_broker.url + "/ui/components-check")
    page.wait_for_selector("main[data-page=not-found]")
    out = page.evaluate(COMPONENTS)
    assert out["rows"] == 50 and out["more"] == 100  # only `limit` rows, then more
    assert out["first"] == "1"  # sorted ascending by the column's key
    valid, checked, message = out["json"]
    assert valid is False and checked is False and "line 3" in message
    assert out["required"] == "Name is required"
    assert out["server"] == "config.maxSize must be an integer >= 1"  # at the field it names
    assert page.locator(".notice-unavailable").inner_text().startswith("Not available yet:")
    assert out["locked"] and out["unlocked"] and out["confirmed"] is True
    assert out["cancelled"] is False
