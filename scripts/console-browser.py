#!/usr/bin/env python3
"""Drives the dispatcher console (/console) in a real headless Chromium for
tests/console_browser.rs: Debian's `chromium` and `chromium-driver`, through Debian's
`python3-selenium`.

    python3 scripts/console-browser.py --url http://127.0.0.1:PORT/console --token TOKEN \
        --screenshot target/artifacts/console.png [--crew CREW_ID] [--dispatcher NAME]

The Rust test owns the server and the phone; the two talk in lines. This script prints a step
name when the page is ready for the next move and reads the test's answer from stdin:

    script                          test
    ready                      ->   raises an SOS on the phone (delivered by its worker)
                               <-   sos <id>
    (the alarm appears without a reload; crew and position are checked; sound is armed; a
     message is typed and Acknowledge clicked; the card shows "acknowledged")
    acknowledged <id>          ->   waits for the phone's listener to see Acknowledged;
                                    adds a newer position to the SOS (delivered)
                               <-   moved <lat> <lon>
    (the card shows the new position, the old one in its trail)
    moved                      <-   offline
    (the page's network is cut through the DevTools protocol; the stream drops)
    offline                    ->   raises a second SOS, waits until the server has it
                               <-   sos <id>
    (the network comes back; the page reconnects with Last-Event-ID and shows the alarm
     raised meanwhile, with a tone)
    replayed <id>              ->   stops the server
                               <-   down
    (the stream breaks for real)
    disconnected               ->   raises a third SOS, restarts the server on the same port
                                    and database, waits until the server has the SOS
                               <-   sos <id>
    (the page reconnects by itself, with Last-Event-ID, and shows the third alarm)
    restarted <id>             ->   starts a lone-worker check-in that soon falls due; cancels
                                    the third SOS (delivered)
                               <-   checkin <address>
    (the server's missed check-in alarm appears; the third alarm shows its cancellation; the
     second, never acknowledged, is highlighted as escalated; the first is resolved with a
     message)
    resolved <id>              ->   waits for the phone's listener to see Resolved; the crew
                                    writes a report with a photo (a PNG of one colour), the
                                    phone delivers the report and the photo
                               <-   report <report id> <photo id> <r> <g> <b> <width>
                                        <height> <bytes> <sha256>
    (the Reports tab is reached with the keyboard; the report shows; the photo renders from
     a blob: URL at its size and colour, read back through a canvas; its size and SHA-256 are
     shown; the file was fetched with the token in the Authorization header, never in a URL;
     a screenshot of the Reports view is saved as console-reports.png beside the other; the
     Alarms tab brings the alarms back)
    reported <id>              <-   done
    screenshot <path>
    result: N checks ok, M failed

Exit status 0 when every check passed, 1 when one failed, 2 when the browser could not be
started (tools missing). Every check is also printed as `ok ...` or `FAIL ...`.
"""

import argparse
import json
import os
import select
import sys
import time
import urllib.request

MESSAGE = "Crew 7 on the way, 6 min"
RESOLVE_MESSAGE = "Police on site, closing"
CHECKS = {"passed": 0, "failed": 0}


def say(line):
    print(line, flush=True)


def check(ok, what):
    CHECKS["passed" if ok else "failed"] += 1
    say(("ok " if ok else "FAIL ") + what)
    return ok


class Abort(Exception):
    """A step could not go on (what it waited for never came)."""


def wait_for(what, fn, timeout):
    """Polls fn() until it returns something truthy; Abort after timeout seconds."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
        except Exception as e:  # a stale element during a re-render: try again
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise Abort(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


_stdin_buffer = b""


def read_command(expect, timeout=120):
    """Reads the test's next line from stdin; it must start with `expect`. Reads the file
    descriptor itself (no buffered reader) so select() never misses a line already read."""
    global _stdin_buffer
    end = time.monotonic() + timeout
    while b"\n" not in _stdin_buffer:
        left = end - time.monotonic()
        if left <= 0 or not select.select([0], [], [], left)[0]:
            raise Abort(f"no '{expect}' from the test within {timeout} s")
        chunk = os.read(0, 4096)
        if not chunk:
            raise Abort(f"stdin closed while waiting for '{expect}'")
        _stdin_buffer += chunk
    line, _stdin_buffer = _stdin_buffer.split(b"\n", 1)
    words = line.decode().split()
    if not words or words[0] != expect:
        raise Abort(f"expected '{expect}' from the test, got {line.decode().strip()!r}")
    return words[1:]


def start_browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        say(f"SKIP: python3-selenium missing ({e})")
        sys.exit(2)
    chromium = os.environ.get("CREWSAFE_CHROMIUM", "/usr/bin/chromium")
    driver_path = os.environ.get("CREWSAFE_CHROMEDRIVER", "/usr/bin/chromedriver")
    for path in (chromium, driver_path):
        if not os.path.exists(path):
            say(f"SKIP: {path} missing (apt-get install chromium chromium-driver)")
            sys.exit(2)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # runs as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1366,768",  # the small laptop the console is made for
        "--force-color-profile=srgb",  # pixels read back as written
    ):
        opts.add_argument(arg)
    # Requests (to read Last-Event-ID) and the page's console (CSP violations, JS errors).
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    except Exception as e:
        say(f"SKIP: chromium could not be started: {e}")
        sys.exit(2)


class Console:
    """The page, seen through WebDriver."""

    def __init__(self, driver):
        self.d = driver
        self.requests = []  # Network.requestWillBeSent params, drained from the log
        self.console = []  # browser console entries

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def card(self, sos_id):
        """The alarm's card as plain data (or None if it is not on the page)."""
        return self.js(
            """
            const li = [...document.querySelectorAll('li.alarm')]
                .find((n) => n.dataset.id === arguments[0]);
            if (!li) return null;
            const t = (sel) => li.querySelector(sel).textContent;
            return {
              list: li.parentElement.id, status: li.dataset.status,
              escalated: li.dataset.escalated, kind: t('.kind'), crew: t('.crew'),
              who: t('.who'), times: t('.times'), where: t('.where'), ack: t('.ack'),
              msg: t('.msg'), age: t('.age'), trail: t('.trail'), cancel: t('.cancel'),
              map: (li.querySelector('.where a.map') || {}).href || null,
            };
            """,
            sos_id,
        )

    def conn(self):
        return self.js("return document.body.dataset.conn || ''")

    def drain_logs(self):
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"])
        self.console.extend(self.d.get_log("browser"))

    def event_requests(self):
        self.drain_logs()
        return [r for r in self.requests if "/v1/dispatch/events" in r["url"]]

    def click_in_card(self, sos_id, selector):
        self.js(
            """
            const li = [...document.querySelectorAll('li.alarm')]
                .find((n) => n.dataset.id === arguments[0]);
            li.scrollIntoView({block: 'center'});
            """,
            sos_id,
        )
        from selenium.webdriver.common.by import By

        for li in self.d.find_elements(By.CSS_SELECTOR, "li.alarm"):
            if li.get_attribute("data-id") == sos_id:
                return li.find_element(By.CSS_SELECTOR, selector)
        raise Abort(f"no card for {sos_id}")

    def set_offline(self, offline):
        self.d.execute_cdp_cmd("Network.enable", {})
        self.d.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {
                "offline": offline,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": -1,
            },
        )


def run(args, page):
    from selenium.webdriver.common.by import By

    d = page.d
    # --- The page's headers: no caching, a strict Content-Security-Policy.
    with urllib.request.urlopen(args.url, timeout=10) as res:
        headers = res.headers
        body = res.read().decode()
    check(
        headers.get("Content-Type", "").startswith("text/html"),
        f"Content-Type {headers.get('Content-Type')!r}",
    )
    check(
        headers.get("Cache-Control") == "no-store",
        f"Cache-Control {headers.get('Cache-Control')!r}",
    )
    csp = headers.get("Content-Security-Policy", "")
    check(
        "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp,
        f"Content-Security-Policy allows this server and the page's own script only: {csp!r}",
    )
    check(
        "<script src" not in body and '<link rel="stylesheet"' not in body,
        "every asset is inline (no other request for scripts or styles)",
    )

    # --- Load, refuse a wrong token, then connect with the right one.
    d.get(args.url)
    wait_for("the token form", lambda: d.find_element(By.ID, "token").is_displayed(), 10)
    check(d.title.endswith("CrewSafe dispatch"), f"page loaded: {d.title!r}")
    d.find_element(By.ID, "token").send_keys("not-a-token")
    d.find_element(By.ID, "connect").click()
    wait_for(
        "the refusal of a wrong token",
        lambda: "refused" in d.find_element(By.ID, "login-error").text,
        10,
    )
    check(True, "a wrong token is refused and the token form comes back")
    d.find_element(By.ID, "token").send_keys(args.token)
    d.find_element(By.ID, "connect").click()
    wait_for("the event stream to connect", lambda: page.conn() == "connected", 15)
    check(
        page.js("return sessionStorage.getItem('crewsafe.dispatcher-token')") == args.token,
        "the token is kept in sessionStorage",
    )
    first = page.event_requests()
    check(
        bool(first) and first[-1]["headers"].get("Authorization") == f"Bearer {args.token}",
        "the event stream is requested with the dispatcher's bearer token",
    )
    # Marks this document: if the page were reloaded, the mark would be gone.
    page.js("window.__crewsafeNoReload = 'same page'")
    say("ready")

    # --- An SOS from the phone appears without a reload.
    (sos_id,) = read_command("sos")
    card = wait_for(f"alarm {sos_id} in the open list", lambda: page.card(sos_id), 20)
    check(
        page.js("return window.__crewsafeNoReload") == "same page",
        "the alarm appeared without a reload",
    )
    check(card["list"] == "open" and card["status"] == "delivered", f"open, delivered: {card}")
    check(card["kind"] == "SOS", f"kind shown as SOS: {card['kind']!r}")
    if args.crew:
        check(card["crew"] == args.crew, f"crew id shown: {card['crew']!r}")
    check(
        args.lat in card["where"] and args.lon in card["where"] and "±" in card["where"],
        f"position with accuracy shown: {card['where']!r}",
    )
    check(
        bool(card["map"])
        and f"mlat={args.lat}" in card["map"]
        and f"mlon={args.lon}" in card["map"],
        f"map link: {card['map']!r}",
    )
    check(
        "(phone)" in card["times"] and "(server)" in card["times"],
        f"device and server times shown: {card['times']!r}",
    )
    age1 = card["age"]
    try:
        age2 = wait_for(
            "the age to count up", lambda: (a := page.card(sos_id)["age"]) != age1 and a, 3
        )
        check(bool(age1), f"the age counts up: {age1!r} -> {age2!r}")
    except Abort as e:
        check(False, f"the age counts up ({e})")

    # --- Arm sound (one click), type a message, acknowledge.
    d.find_element(By.ID, "arm").click()
    sound = wait_for("the audio context", lambda: page.js("return document.body.dataset.sound"), 5)
    check(sound == "running", f"sound armed by one click: AudioContext {sound!r}")
    page.click_in_card(sos_id, "input.message").send_keys(MESSAGE)
    page.click_in_card(sos_id, "button.do-ack").click()
    card = wait_for(
        "the card to show acknowledged",
        lambda: (c := page.card(sos_id)) and c["status"] == "acknowledged" and c,
        10,
    )
    check("Acknowledged by" in card["ack"], f"acknowledged by/at shown: {card['ack']!r}")
    if args.dispatcher:
        check(args.dispatcher in card["ack"], f"the dispatcher's name shown: {card['ack']!r}")
    # The message comes back in the server's view of the alarm (not just the typed text).
    try:
        card = wait_for(
            "the message in the card",
            lambda: (c := page.card(sos_id)) and MESSAGE in c["msg"] and c,
            5,
        )
        check(True, f"the message to the crew is shown: {card['msg']!r}")
    except Abort as e:
        check(False, f"the message to the crew is shown ({e})")
    say(f"acknowledged {sos_id}")

    # --- A newer position from the phone replaces the alarm's view in place.
    lat2, lon2 = read_command("moved")
    card = wait_for(
        "the newer position",
        lambda: (c := page.card(sos_id)) and f"{lat2}, {lon2}" in c["where"] and c,
        15,
    )
    check(True, f"the newer position replaced the old one live: {card['where']!r}")
    check(
        f"{args.lat}, {args.lon}" in card["trail"],
        f"the earlier position is in the trail: {card['trail']!r}",
    )
    check(card["status"] == "acknowledged", "the moved alarm is still acknowledged")
    check(
        page.js("return document.querySelectorAll('li.alarm').length") == 1,
        "one card per alarm (the update replaced it, no duplicate)",
    )
    say("moved")

    # --- Cut the page's network; an alarm raised meanwhile appears after reconnect.
    read_command("offline")
    before = page.event_requests()
    last_id = page.js("return document.body.dataset.lastEventId || null")
    page.set_offline(True)
    wait_for("the page to notice it is offline", lambda: page.conn() != "connected", 15)
    check(True, f"the page shows it is not connected: {d.find_element(By.ID, 'status').text!r}")
    tones_before = int(page.js("return document.body.dataset.alarmTones || '0'"))
    say("offline")
    (sos2,) = read_command("sos")
    time.sleep(0.5)
    check(page.card(sos2) is None, "the second alarm is not on the page while offline")
    page.set_offline(False)
    card2 = wait_for(f"alarm {sos2} after the reconnect", lambda: page.card(sos2), 30)
    check(
        card2["list"] == "open",
        f"the alarm raised meanwhile appears after reconnect: {card2['crew']!r}",
    )
    check(
        page.js("return window.__crewsafeNoReload") == "same page",
        "the alarm raised while offline appeared without a reload",
    )
    wait_for("connected again", lambda: page.conn() == "connected", 10)
    after = page.event_requests()[len(before) :]
    sent = [r["headers"].get("Last-Event-ID") for r in after]
    check(
        bool(sent) and last_id is not None and sent[-1] == last_id,
        f"the reconnect sent Last-Event-ID {last_id!r}: {sent!r}",
    )
    check(
        page.card(sos_id)["status"] == "acknowledged",
        "the first alarm is still shown acknowledged after the reconnect",
    )
    tones_after = wait_for(
        "a tone for the new alarm",
        lambda: (n := int(page.js("return document.body.dataset.alarmTones || '0'"))) > tones_before
        and n,
        5,
    )
    check(
        tones_after > tones_before,
        f"the armed page played a tone for the new alarm ({tones_after})",
    )
    order = page.js(
        "return [...document.querySelectorAll('#open li.alarm')].map((n) => n.dataset.id)"
    )
    check(
        order.index(sos2) < order.index(sos_id),
        "an unacknowledged alarm is listed before an acknowledged one",
    )
    say(f"replayed {sos2}")

    # --- The server restarts: the stream breaks for real; the page reconnects by itself.
    read_command("down")
    last_id = page.js("return document.body.dataset.lastEventId || null")
    before = page.event_requests()
    wait_for("the page to notice the server is gone", lambda: page.conn() != "connected", 20)
    check(True, f"the page shows the lost stream: {d.find_element(By.ID, 'status').text!r}")
    say("disconnected")
    (sos3,) = read_command("sos")
    card3 = wait_for(f"alarm {sos3} after the server restart", lambda: page.card(sos3), 40)
    check(
        card3["list"] == "open",
        "the alarm raised while the server was down appears after it restarts",
    )
    check(
        page.js("return window.__crewsafeNoReload") == "same page",
        "the alarm raised while the server was down appeared without a reload",
    )
    wait_for("connected again", lambda: page.conn() == "connected", 10)
    sent = [r["headers"].get("Last-Event-ID") for r in page.event_requests()[len(before) :]]
    check(
        last_id is not None and bool(sent) and sent[0] == last_id,
        f"the reconnects after the restart sent Last-Event-ID {last_id!r}: {sent!r}",
    )
    check(
        page.card(sos_id) is not None and page.card(sos2) is not None,
        "the earlier alarms are still listed",
    )
    say(f"restarted {sos3}")

    # --- A lone-worker check-in that is not closed in time raises an alarm by itself.
    address = " ".join(read_command("checkin"))
    missed = wait_for(
        "the missed check-in alarm",
        lambda: page.js("""
            const li = [...document.querySelectorAll('#open li.alarm')]
                .find((n) => n.querySelector('.kind').textContent === 'MISSED CHECK-IN');
            return li ? {checkin: li.querySelector('.checkin').textContent,
                         crew: li.querySelector('.crew').textContent} : null;
            """),
        30,
    )
    check(
        address in missed["checkin"] and "due" in missed["checkin"],
        f"a missed check-in shows its address and due time: {missed['checkin']!r}",
    )
    if args.crew:
        check(
            missed["crew"] == args.crew, f"the missed check-in shows the crew: {missed['crew']!r}"
        )

    # --- The crew cancelled the third alarm: the card says so (the alarm stays open).
    card3 = wait_for(
        "the cancellation",
        lambda: (c := page.card(sos3)) and "Cancelled by crew" in c["cancel"] and c,
        15,
    )
    check(
        "false alarm" in card3["cancel"] and "pressed in a pocket" in card3["cancel"],
        f"the cancellation shows reason and note: {card3['cancel']!r}",
    )
    check(card3["list"] == "open", "a cancelled alarm stays open until dispatch resolves it")

    # --- An alarm nobody acknowledged in time is highlighted as escalated.
    card2 = wait_for(
        "the unacknowledged alarm to be escalated",
        lambda: (c := page.card(sos2)) and c["escalated"] == "true" and c,
        20,
    )
    check(
        page.js(
            """
            const li = [...document.querySelectorAll('li.alarm')]
                .find((n) => n.dataset.id === arguments[0]);
            return li.classList.contains('escalated') &&
                getComputedStyle(li.querySelector('.esc')).display !== 'none';
            """,
            sos2,
        ),
        "an unacknowledged alarm past its escalation time is highlighted ESCALATED",
    )
    check(page.card(sos_id)["escalated"] == "false", "an acknowledged alarm is never escalated")

    # --- Resolve the first alarm with a message: it moves to "recently resolved".
    page.click_in_card(sos_id, "input.message").send_keys(RESOLVE_MESSAGE)
    page.click_in_card(sos_id, "button.do-resolve").click()
    card = wait_for(
        "the alarm in the recently resolved list",
        lambda: (c := page.card(sos_id)) and c["list"] == "resolved" and c,
        10,
    )
    check("Resolved by" in card["ack"], f"resolved by/at shown: {card['ack']!r}")
    check(
        page.js("return !document.getElementById('resolved-title').hidden"),
        "the recently resolved section is shown",
    )
    say(f"resolved {sos_id}")

    reports_view(args, page)
    read_command("done")
    page.js("window.scrollTo(0, 0)")


def reports_view(args, page):
    """A report with a photo from the phone: reached with the keyboard, the photo rendered."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = page.d
    report_id, photo_id, r, g, b, width, height, size, sha = read_command("report")
    rgb, width, height, size = [int(r), int(g), int(b)], int(width), int(height), int(size)

    # --- The Reports tab, with the keyboard: focus the Alarms tab, arrow right.
    d.find_element(By.ID, "tab-alarms").send_keys(Keys.ARROW_RIGHT)
    wait_for(
        "the Reports view",
        lambda: page.js("return document.body.dataset.view") == "reports",
        5,
    )
    check(
        page.js(
            """
            const t = document.getElementById('tab-reports');
            return document.activeElement === t && t.getAttribute('aria-selected') === 'true'
                && document.getElementById('tab-alarms').getAttribute('aria-selected') === 'false'
                && !document.getElementById('reports-view').hidden
                && document.getElementById('alarms-view').hidden;
            """
        ),
        "the arrow key moved to the Reports tab (focused, selected, its panel shown)",
    )

    # --- The report and its photo, loaded with the token in a header into a blob: URL.
    card = wait_for(
        f"report {report_id} with its photo rendered",
        lambda: page.js(
            """
            const li = [...document.querySelectorAll('#reports li.report')]
                .find((n) => n.dataset.id === arguments[0]);
            if (!li) return null;
            const f = [...li.querySelectorAll('li.file')]
                .find((n) => n.dataset.attachmentId === arguments[1]);
            const img = f && f.querySelector('img');
            if (!img || !img.complete || img.naturalWidth === 0) return null;
            const c = document.createElement('canvas');
            c.width = img.naturalWidth;
            c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const px = [...ctx.getImageData(c.width >> 1, c.height >> 1, 1, 1).data];
            const corner = [...ctx.getImageData(0, 0, 1, 1).data];
            const save = f.querySelector('a.save');
            return {
              crew: li.querySelector('.crew').textContent,
              head: li.querySelector('h3').textContent,
              text: li.textContent, info: f.querySelector('.info').textContent,
              sha: (f.querySelector('.sha code') || {}).textContent,
              src: img.src, alt: img.alt, w: img.naturalWidth, h: img.naturalHeight,
              shownW: img.getBoundingClientRect().width, px, corner,
              save: save ? {href: save.href, download: save.download, tab: save.tabIndex} : null,
              state: f.dataset.state,
            };
            """,
            report_id,
            photo_id,
        ),
        40,
    )
    check(
        page.js("return window.__crewsafeNoReload") == "same page",
        "the report appeared without a reload",
    )
    if args.crew:
        check(card["crew"] == args.crew, f"the report shows its crew: {card['crew']!r}")
    check(card["src"].startswith("blob:"), f"the photo is shown from a blob: URL: {card['src']!r}")
    check(
        (card["w"], card["h"]) == (width, height),
        f"the photo renders at its size: {card['w']}x{card['h']} (expected {width}x{height})",
    )
    check(card["shownW"] > 0, f"the photo takes room on the page ({card['shownW']} px wide)")
    def close(px):
        return all(abs(a - e) <= 2 for a, e in zip(px[:3], rgb)) and px[3] == 255

    check(
        close(card["px"]) and close(card["corner"]),
        f"the photo's pixels have the phone's colour: {card['px']} and {card['corner']} "
        f"(expected {rgb})",
    )
    check(
        bool(card["alt"]) and "photo" in card["alt"],
        f"the photo has a text alternative: {card['alt']!r}",
    )
    check(card["sha"] == sha, f"the SHA-256 is shown in full: {card['sha']!r}")
    check(
        f"{size:,} bytes" in card["info"],
        f"the size is shown ({size:,} bytes): {card['info']!r}",
    )
    check("image/png" in card["info"], "the MIME type is shown")
    check(
        bool(card["save"])
        and card["save"]["href"].startswith("blob:")
        and card["save"]["download"].endswith(".png")
        and card["save"]["tab"] >= 0,
        f"a keyboard-reachable link saves the photo: {card['save']!r}",
    )

    # --- The file travelled with the token in the header, never in a URL.
    page.drain_logs()
    downloads = [
        r for r in page.requests if f"/attachments/{photo_id}" in r["url"].lower()
    ]
    check(
        bool(downloads)
        and all(r["headers"].get("Authorization") == f"Bearer {args.token}" for r in downloads),
        f"the photo was fetched with the bearer token header ({len(downloads)} request(s))",
    )
    check(
        all(args.token not in r["url"] for r in page.requests),
        "the token is in no URL the page asked for",
    )
    listed = [r for r in page.requests if "/v1/dispatch/reports?" in r["url"]]
    check(
        bool(listed) and listed[-1]["headers"].get("Authorization") == f"Bearer {args.token}",
        "the report list is asked for with the bearer token header",
    )

    # --- A screenshot of the Reports view, then back to the alarms, which still work.
    page.js("window.scrollTo(0, 0)")
    shot = os.path.join(os.path.dirname(os.path.abspath(args.screenshot)), "console-reports.png")
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    d.save_screenshot(shot)
    say(f"screenshot {shot}")
    d.find_element(By.ID, "tab-alarms").click()
    wait_for(
        "the Alarms view again",
        lambda: page.js("return document.body.dataset.view") == "alarms",
        5,
    )
    check(
        page.js("return document.querySelectorAll('#open li.alarm, #resolved li.alarm').length")
        >= 3,
        "the Alarms tab brings the alarm cards back",
    )
    say(f"reported {report_id}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--url", required=True, help="the console URL, e.g. http://127.0.0.1:PORT/console"
    )
    ap.add_argument("--token", required=True, help="a dispatcher token")
    ap.add_argument("--screenshot", required=True, help="where to save a PNG of the console")
    ap.add_argument("--crew", help="crew id the alarms carry")
    ap.add_argument("--dispatcher", help="the dispatcher's name (shown as acknowledged by)")
    ap.add_argument(
        "--lat", default="51.16940", help="latitude of the phone's fix, as shown (5 decimals)"
    )
    ap.add_argument(
        "--lon", default="71.44910", help="longitude of the phone's fix, as shown (5 decimals)"
    )
    args = ap.parse_args()

    driver = start_browser()
    page = Console(driver)
    code = 0
    try:
        run(args, page)
    except Abort as e:
        check(False, str(e))
    except Exception as e:  # a WebDriver error: report it as a failed check
        check(False, f"{type(e).__name__}: {e}")
    finally:
        try:
            page.drain_logs()
            bad = [
                e["message"]
                for e in page.console
                if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]
            ]
            check(not bad, f"no CSP violation or uncaught error in the page's console: {bad}")
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            driver.save_screenshot(args.screenshot)
            say(f"screenshot {os.path.abspath(args.screenshot)}")
        except Exception as e:
            check(False, f"screenshot: {e}")
        driver.quit()
    say(f"result: {CHECKS['passed']} checks ok, {CHECKS['failed']} failed")
    if CHECKS["failed"]:
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
