#!/usr/bin/env python3
"""Drives the Vigil dashboard in Debian's headless Chromium through ChromeDriver's W3C WebDriver
HTTP API (Python's standard library only), as a person would use it: sign in with a token,
filter the fleet to NON_COMPLIANT, open the failing device, find its failing check, and save a
screenshot. Any step that does not happen within its timeout fails the run (exit 1).

Usage: dashboard_driver.py --url https://127.0.0.1:PORT/ --token-file FILE
           --compliant DEVICE_ID --failing DEVICE_ID --failing-check CHECK --spki BASE64
           --screenshot OUT.png [--fleet-screenshot OUT.png]

--spki is the base64 SHA-256 of the server certificate's public key: Chromium trusts that key
and nothing else (--ignore-certificate-errors-spki-list), so the test still talks TLS 1.3 to
the real certificate without installing the private CA into a browser profile.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VIGIL_CHROMEDRIVER", "/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element key


class Failure(Exception):
    pass


def step(msg):
    print("--- dashboard: " + msg, flush=True)


class WebDriver:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.session = None

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read()).get("value", {})
            except ValueError:
                value = {}
            raise Failure("webdriver %s %s: %s: %s" % (method, path, value.get("error", e.code),
                                                      value.get("message", "")[:300]))

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def start(self, args):
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": False,
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}}
        self.session = self.call("POST", "/session", caps, timeout=60)["sessionId"]

    def find_all(self, css):
        return self.s("POST", "/elements", {"using": "css selector", "value": css})

    def run(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, what, predicate, timeout=20):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (Failure, OSError) as e:  # a stale element; chromedriver not up yet
                last = e
            time.sleep(0.1)
        raise Failure("timed out after %d s waiting for %s (last: %s)" % (timeout, what, last))

    def wait_for(self, css, timeout=20):
        return self.wait(css, lambda: (self.find_all(css) or [None])[0], timeout)[ELEMENT]

    def click(self, element):
        self.s("POST", "/element/%s/click" % element, {})

    def type(self, element, text):
        self.s("POST", "/element/%s/value" % element, {"text": text})

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise Failure("the screenshot is not a PNG")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body_text(wd):
    return wd.run("return document.body.innerText;") or ""


def main():
    p = argparse.ArgumentParser()
    for name in ("url", "token-file", "compliant", "failing", "failing-check", "spki",
                 "screenshot"):
        p.add_argument("--" + name, required=True)
    p.add_argument("--fleet-screenshot")
    a = p.parse_args()

    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise Failure("%s is missing (Debian package %s): run scripts/deps.sh --test"
                          % (binary, package))
    with open(a.token_file) as f:
        token = f.read().strip()

    profile = tempfile.mkdtemp(prefix="vigil-chromium.")
    port = free_port()
    log = open(os.path.join(profile, "chromedriver.log"), "w")
    driver = subprocess.Popen([CHROMEDRIVER, "--port=%d" % port], stdout=log,
                              stderr=subprocess.STDOUT)
    wd = WebDriver(port)
    try:
        wd.wait("chromedriver", lambda: wd.call("GET", "/status", timeout=2).get("ready"),
                timeout=20)
        args = ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--window-size=1360,1000",
                "--user-data-dir=" + os.path.join(profile, "profile"),
                "--ignore-certificate-errors-spki-list=" + a.spki]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
        step("starting Chromium")
        wd.start(args)

        step("open %s and sign in" % a.url)
        wd.s("POST", "/url", {"url": a.url})
        token_field = wd.wait_for("#token")
        # The page came over TLS from the server itself (a certificate error would show
        # Chromium's interstitial instead of the sign-in form).
        if not wd.run("return location.protocol;") == "https:":
            raise Failure("the page is not served over https")
        wd.type(token_field, token)
        wd.click(wd.wait_for("#login-button"))
        wd.wait_for('tr[data-device-id="%s"]' % a.compliant)
        wd.wait_for('tr[data-device-id="%s"]' % a.failing)
        wd.wait("the summary counts", lambda: wd.find_all('[data-status-count="NON_COMPLIANT"]'))
        if wd.run("return sessionStorage.getItem('vigil.token');") != token:
            raise Failure("the token is not kept in sessionStorage")
        if a.fleet_screenshot:
            wd.screenshot(a.fleet_screenshot)

        step("filter to NON_COMPLIANT")
        wd.click(wd.wait_for('#status-filter option[value="NON_COMPLIANT"]'))
        wd.wait("the compliant device to leave the table",
                lambda: not wd.find_all('tr[data-device-id="%s"]' % a.compliant)
                and wd.find_all('#devices[data-loaded="true"] tr[data-device-id="%s"]'
                                '[data-status="NON_COMPLIANT"]' % a.failing))

        step("the text filter hides what does not match, and shows it again")
        text = wd.wait_for("#text-filter")
        wd.type(text, "no-such-host-anywhere")
        wd.wait("the table to empty",
                lambda: not wd.find_all("tr[data-device-id]")
                and "hidden" not in wd.run("return document.getElementById('no-devices').className;"))
        wd.s("POST", "/element/%s/clear" % text, {})
        wd.run("document.getElementById('text-filter').dispatchEvent(new Event('input'));")
        wd.wait_for('tr[data-device-id="%s"]' % a.failing)

        step("open the non-compliant device")
        wd.click(wd.wait_for('a[data-device-link="%s"]' % a.failing))
        check = '[data-check="%s"][data-status="FAIL"]' % a.failing_check
        wd.wait_for(check)
        wd.wait_for('#device-status[data-status="NON_COMPLIANT"]')
        wd.wait("the history rows", lambda: wd.find_all("#history tbody tr[data-sequence]"))
        if not wd.run("return location.hash;").startswith("#/device/"):
            raise Failure("the device page is not at #/device/ID")
        reason = wd.run("return document.querySelector(arguments[0] + ' .reason').textContent;",
                        check)
        if not reason.strip():
            raise Failure("the failing check shows no reason")
        if not wd.find_all(check + " dl.evidence"):
            raise Failure("the failing check's evidence is not rendered")
        # Tall enough for the device's checks (capped: it is also the README's picture).
        height = wd.run("return document.documentElement.scrollHeight;")
        wd.s("POST", "/window/rect", {"width": 1360, "height": max(1000, min(int(height), 1700))})
        wd.screenshot(a.screenshot)
        step("screenshot saved to " + a.screenshot)

        step("sign out forgets the token")
        wd.click(wd.wait_for("#logout"))
        wd.wait_for("#token")
        if wd.run("return sessionStorage.getItem('vigil.token');") is not None:
            raise Failure("the token survived signing out")
    finally:
        if wd.session:
            try:
                wd.call("DELETE", "/session/" + wd.session, timeout=20)
            except Exception:  # the browser may already be gone
                pass
        driver.terminate()
        try:
            driver.wait(10)
        except subprocess.TimeoutExpired:
            driver.kill()
        log.close()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(profile, ignore_errors=True)
        else:
            print("kept " + profile)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: dashboard: %s" % e, file=sys.stderr)
        sys.exit(1)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("FAIL: dashboard: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
