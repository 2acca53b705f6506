#!/usr/bin/env python3
"""The status page in a real browser: headless Chromium, through the
DevTools protocol, against `agentkv serve` on the test model, with API keys
and an admin key. It checks that the page

  - opens without data and asks for the admin key (the admin API answers
    401 without it), then shows the agents this test created, the slots,
    the totals, the chart and the recent requests;
  - updates by itself after a new request;
  - pins, unpins and warms an agent, and deletes one only once its
    confirmation is accepted (a dismissed one deletes nothing);
  - pages and filters 1,004 agents;
  - logs no console error and throws no exception throughout;

and that `agentkv status` shows the same daemon. Exit 0: passed; 1:
failed; 77: skipped, because no Chromium is installed (CI=true turns that
into a failure). --screenshot PATH and --status-sample PATH keep the page's
screenshot and the CLI's output (docs/).

Usage: ui_browser_test.py --agentkv build/agentkv [--screenshot F] [--status-sample F]
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chromium  # noqa: E402

ADMIN_KEY = "admin-" + os.urandom(8).hex()
API_KEY = "agent-" + os.urandom(8).hex()
AGENTS = ["planner", "coder", "critic", "researcher.v2"]


def cache_dir():
    if os.environ.get("AGENTKV_CACHE_DIR"):
        return os.environ["AGENTKV_CACHE_DIR"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "agentkv")
    return os.path.join(os.path.expanduser("~"), ".cache", "agentkv")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


class Agentkv:
    """`agentkv serve` on a free port, starting llama-server on the test model."""

    def __init__(self, binary, tmp):
        llama = os.environ.get("AGENTKV_LLAMA_SERVER") or os.path.join(cache_dir(), "bin", "llama-server")
        model = os.environ.get("AGENTKV_TEST_MODEL") or os.path.join(cache_dir(), "models", "agentkv-test.gguf")
        for what, path in (("llama-server", llama), ("the test model", model)):
            check(os.path.exists(path), f"{what} not found at {path}: run scripts/setup.sh")
        self.key_file = os.path.join(tmp, "admin.key")
        with open(self.key_file, "w") as f:
            f.write(ADMIN_KEY + "\n")
        with open(os.path.join(tmp, "api.keys"), "w") as f:
            f.write(API_KEY + "\n")
        self.binary = binary
        self.log = []
        self.history = {}  # each agent's conversation so far: every turn extends it
        self._proc = subprocess.Popen(
            [binary, "serve", "--port", "0", "--model", model, "--llama-server", llama,
             "--slots", "2", "--memory-dir", os.path.join(tmp, "memory"),
             "--api-key-file", os.path.join(tmp, "api.keys"), "--admin-key-file", self.key_file,
             "--", "--ctx-size", "4096", "--threads", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        listening = threading.Event()
        self.port = None

        def read():
            for line in self._proc.stdout:
                self.log.append(line)
                m = re.search(r"agentkv listening on \S+:(\d+),", line)
                if m:
                    self.port = int(m.group(1))
                    listening.set()
            listening.set()

        threading.Thread(target=read, daemon=True).start()
        listening.wait(120)
        check(self.port, "agentkv did not start:\n" + "".join(self.log[-30:]))
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, body=None, key=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        data = None
        if body is not None:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
        conn.request(method, path, data, h)
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, payload

    def admin(self, method, path, body=None):
        status, _, payload = self.request(method, path, body, key=ADMIN_KEY)
        return status, json.loads(payload) if payload else None

    def turn(self, agent, text):
        prompt = self.history.get(agent, f"You are {agent}.") + "\nUser: " + text + "\nAssistant:"
        status, headers, payload = self.request(
            "POST", f"/agents/{agent}/completion",
            {"prompt": prompt, "n_predict": 8, "temperature": 0}, key=API_KEY)
        check(status == 200, f"turn of {agent}: {status} {payload[:200]!r}")
        self.history[agent] = prompt + json.loads(payload).get("content", "")
        return headers.get("x-agentkv-placement")

    def status_cli(self, *extra):
        return subprocess.run([self.binary, "status", "--url", self.url, "--admin-key-file",
                               self.key_file, *extra], capture_output=True, text=True, timeout=60)

    def stop(self):
        self._proc.terminate()
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def js(value):
    return json.dumps(value)


ROW_KEYS = "Array.from(document.querySelectorAll('#agents tbody tr')).map(r => r.dataset.key)"


def row_cell(agent, column):
    return (f"(() => {{ const r = Array.from(document.querySelectorAll('#agents tbody tr'))"
            f".find(r => r.dataset.key === {js(agent)}); return r ? r.cells[{column}].textContent : null; }})()")


def click(agent, action):
    return (f"(() => {{ const r = Array.from(document.querySelectorAll('#agents tbody tr'))"
            f".find(r => r.dataset.key === {js(agent)}); if (!r) return false;"
            f" const b = r.querySelector('button[data-action=\"{action}\"]');"
            f" if (!b || b.disabled) return false; b.click(); return true; }})()")


def step(message):
    print("==", message, flush=True)


def run(args, tmp):
    daemon = Agentkv(args.agentkv, tmp)
    browser = None
    try:
        step("the page holds no data, and the admin API needs the admin key")
        status, headers, page = daemon.request("GET", "/ui")
        check(status == 200, f"GET /ui: {status}")
        csp = headers.get("content-security-policy", "")
        check("script-src 'self'" in csp and "default-src 'none'" in csp, "CSP: " + csp)
        check(b'data-auth="key"' in page, "the page should ask for the key")
        check(daemon.request("GET", "/admin/status")[0] == 401, "status without a key")
        check(daemon.request("GET", "/admin/status", key=API_KEY)[0] == 401, "status with an API key")
        check(daemon.admin("GET", "/admin/status")[0] == 200, "status with the admin key")

        step("traffic: 4 agents on 2 slots")
        for agent in AGENTS:
            daemon.turn(agent, "Plan the bridge over the river, step by step, with costs.")
        check(daemon.turn("planner", "And the second step?") == "restored", "planner comes back from disk")
        check(daemon.turn("planner", "And the third?") == "resident", "and stays")
        daemon.turn("coder", "Write the code for the first step.")
        # Under API keys each key has its own agents, listed as <id>@<scope>.
        listed = {a["id"].split("@")[0]: a["id"] for a in daemon.admin("GET", "/admin/agents")[1]["agents"]}
        check(sorted(listed) == sorted(AGENTS), f"agents: {listed}")
        ids = [listed[a] for a in AGENTS]
        planner, critic = listed["planner"], listed["critic"]
        scope = planner.split("@")[1]

        step("the browser opens the page, which asks for the admin key")
        browser = chromium.Browser(args.chromium, os.path.join(tmp, "profile"),
                                   os.path.join(tmp, "chromium.log"))
        browser.open(daemon.url + "/ui")
        browser.wait_for("!document.getElementById('key-panel').hidden", "the key prompt")
        check(browser.evaluate("document.getElementById('main').hidden"), "no data before the key")
        check(browser.evaluate(ROW_KEYS) == [], "no agent rows before the key")
        browser.type_into("#key", ADMIN_KEY)
        browser.evaluate("document.getElementById('key-submit').click()")

        step("it shows the agents, slots, totals, chart and recent requests")
        keys = browser.wait_for(
            f"(() => {{ const k = {ROW_KEYS}; return {js(ids)}.every(a => k.includes(a)) && k; }})()",
            "the test's agents in the list")
        check(len(keys) == 4, f"agents listed: {keys}")
        check(browser.evaluate(row_cell(planner, 0)) == planner, "ids are shown as text")
        check("1 resident" in browser.evaluate(row_cell(planner, 6)), "planner's placements")
        check(browser.evaluate("document.querySelectorAll('#slots tbody tr').length") == 2, "2 slots")
        check(browser.evaluate("document.querySelectorAll('#recent tbody tr').length") >= 7,
              "the recent requests")
        legend = browser.evaluate("document.getElementById('legend').textContent")
        check("cold" in legend and "restored" in legend and "resident" in legend, "chart legend: " + legend)
        totals = browser.evaluate("document.getElementById('totals').textContent")
        check("restores" in totals and "upstream restarts" in totals, "totals: " + totals)
        check(not browser.evaluate("document.getElementById('forget-key').hidden"), "a way to forget the key")
        if args.screenshot:
            browser.screenshot(args.screenshot)
            step("screenshot written to " + args.screenshot)

        step("a new request shows up by itself")
        daemon.turn("reviewer", "a new agent's first question")
        reviewer = "reviewer@" + scope
        browser.wait_for(f"{ROW_KEYS}.includes({js(reviewer)})", "the new agent in the list")
        browser.wait_for(f"document.querySelector('#recent tbody tr').cells[1].textContent === {js(reviewer)}",
                         "the new request at the top of the log")

        step("agentkv status shows the same daemon")
        cli = daemon.status_cli()
        check(cli.returncode == 0, "agentkv status: " + cli.stderr)
        check("SLOT  STATE" in cli.stdout and "\nreviewer@" in cli.stdout, cli.stdout)
        if args.status_sample:
            with open(args.status_sample, "w") as f:
                f.write(cli.stdout)
        cli_json = json.loads(daemon.status_cli("--json").stdout)
        check(cli_json["totals"]["agents"] == 5, f"agents: {cli_json['totals']['agents']}")

        step("pin and unpin from the page")
        check(browser.evaluate(click(planner, "pin")), "the pin button")
        browser.wait_for(f"{row_cell(planner, 1)}.includes('pinned')", "planner shown pinned")
        check(daemon.admin("GET", f"/admin/agents/{planner}")[1]["pinned"], "planner pinned")
        check(browser.evaluate(click(planner, "unpin")), "the unpin button")
        browser.wait_for(f"!{row_cell(planner, 1)}.includes('pinned')", "planner shown unpinned")
        check(not daemon.admin("GET", f"/admin/agents/{planner}")[1]["pinned"], "planner unpinned")

        step("warm an agent from disk")
        on_disk = [a for a in ids if not daemon.admin("GET", f"/admin/agents/{a}")[1]["resident"]]
        check(on_disk, "an agent on disk")
        check(browser.evaluate(click(on_disk[0], "warm")), "the warm button")
        browser.wait_for(f"{row_cell(on_disk[0], 1)}.startsWith('slot')", f"{on_disk[0]} in a slot")
        check(daemon.admin("GET", f"/admin/agents/{on_disk[0]}")[1]["resident"], "warmed")

        step("delete asks first: dismissed, nothing goes; accepted, the agent goes")
        browser.accept_dialogs = False
        check(browser.evaluate(click(critic, "delete")), "the delete button")
        check(len(browser.dialogs) == 1 and critic in browser.dialogs[0], f"dialogs: {browser.dialogs}")
        seen = int(browser.evaluate("document.body.dataset.refreshes"))
        browser.wait_for(f"Number(document.body.dataset.refreshes) >= {seen + 2}", "two refreshes")
        check(critic in browser.evaluate(ROW_KEYS), "critic is still listed")
        check(daemon.admin("GET", f"/admin/agents/{critic}")[0] == 200, "critic still exists")
        browser.accept_dialogs = True
        check(browser.evaluate(click(critic, "delete")), "the delete button")
        browser.wait_for(f"!{ROW_KEYS}.includes({js(critic)})", "critic gone from the list")
        check(daemon.admin("GET", f"/admin/agents/{critic}")[0] == 404, "critic deleted")

        step("1,004 agents: paged and filtered")
        for i in range(1000):
            status, body = daemon.admin("POST", f"/admin/agents/{listed['coder']}/fork",
                                        {"into": f"bulk-{i:04d}@{scope}"})
            check(status == 200, f"fork {i}: {status} {body}")
        browser.wait_for("document.getElementById('page').textContent === '1–50 of 1,004'", "the first page")
        check(len(browser.evaluate(ROW_KEYS)) == 50, "50 rows")
        browser.evaluate("document.getElementById('next').click()")
        browser.wait_for("document.getElementById('page').textContent === '51–100 of 1,004'", "the next page")
        browser.type_into("#filter", "bulk-09")
        browser.wait_for("document.getElementById('page').textContent === '1–50 of 100'", "the filter")
        check(all(k.startswith("bulk-09") for k in browser.evaluate(ROW_KEYS)), "filtered rows")
        seen = int(browser.evaluate("document.body.dataset.refreshes"))
        browser.wait_for(f"Number(document.body.dataset.refreshes) >= {seen + 2}", "refreshes go on", 15)

        check(not browser.errors, "console errors:\n" + "\n".join(browser.errors))
        step("passed: no console errors, " + str(len(browser.dialogs)) + " confirmations")
        return 0
    except Exception:
        print("--- agentkv's log (tail) ---\n" + "".join(daemon.log[-30:]))
        raise
    finally:
        if browser:
            browser.close()
        daemon.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agentkv", required=True)
    parser.add_argument("--screenshot")
    parser.add_argument("--status-sample")
    args = parser.parse_args()
    args.chromium = chromium.find()
    if not args.chromium:
        message = ("no Chromium found (" + ", ".join(chromium.NAMES) + " on PATH, or "
                   "$AGENTKV_CHROMIUM): install it with scripts/setup.sh (Debian's chromium)")
        if os.environ.get("CI", "").lower() == "true":
            print("FAIL: " + message + "; CI must run the browser test")
            return 1
        print("SKIP: " + message)
        return 77
    for name in ("screenshot", "status_sample"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    with tempfile.TemporaryDirectory(prefix="agentkv-browser-") as tmp:
        try:
            return run(args, tmp)
        except (AssertionError, TimeoutError, chromium.CdpError, OSError) as e:
            traceback.print_exc()
            print("FAIL:", e)
            log = os.path.join(tmp, "chromium.log")
            if os.path.exists(log):
                print("--- chromium's log (tail) ---\n" + "".join(open(log).readlines()[-20:]))
            return 1


if __name__ == "__main__":
    sys.exit(main())
