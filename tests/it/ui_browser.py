"""The status page in a real browser (headless Chromium from Debian, driven by Selenium). Run by ui.rs.

argv: GHBOOT_BIN STATE_DIR PUSH_JSON POISON_JSON OUT_DIR; the page's URL (token included) on stdin.
Steps, each asserted, each with a screenshot in OUT_DIR:
  1. the page shows the six stages (each row says done) and NATS healthy, at 1280x800;
  2. a signed delivery sent now appears without a reload within 5 s (a marker set on the window survives);
  3. a poison push becomes a dead letter with a Replay button; clicking it says replayed;
  4. the same page at a phone's width.
Prints one JSON object (what was seen) and exits 0, or prints the failure and exits 1.
"""
import json, os, subprocess, sys, time, uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

# The live part is replaced whenever it changes: read it in one script (atomic), and retry a click whose
# element was replaced between finding and clicking it.
ROWS = "return Object.fromEntries([...document.querySelectorAll(arguments[0])].map(r => [r.querySelector('th') ? r.querySelector('th').innerText.trim() : '', r.innerText]))"

TEXTS = "return [...document.querySelectorAll(arguments[0])].map(r => r.innerText)"


def fresh(f, tries=20):
    for _ in range(tries - 1):
        try:
            return f()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return f()


STAGES = ["prerequisites", "state-backend", "nats", "webhooks", "controller", "self-management"]


def main():
    ghboot, state, push, poison, out = sys.argv[1:6]
    url = sys.stdin.readline().strip()
    os.makedirs(out, exist_ok=True)
    seen = {}
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("GHBOOT_TEST_CHROMIUM", "chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,800", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-extensions",
              f"--user-data-dir={os.path.join(out, 'profile')}"]:
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("GHBOOT_TEST_CHROMEDRIVER", "chromedriver"),
                      log_output=os.path.join(out, "chromedriver.log"))
    d = webdriver.Chrome(options=opts, service=service)
    try:
        d.set_window_size(1280, 800)
        d.get(url)
        wait = WebDriverWait(d, 15, poll_frequency=0.2)

        # 1. six stages, each in its own row saying done; NATS healthy
        def stage_rows(drv):
            got = drv.execute_script(ROWS, "#stages tbody tr")
            return got if all(s in got and "done" in got[s] for s in STAGES) else False
        rows = wait.until(stage_rows, "six stage rows that say done")
        seen["stages"] = {k: v.split("\n")[0] for k, v in rows.items()}
        nats = fresh(lambda: d.find_element(By.CSS_SELECTOR, "#nats h2").text)
        assert "healthy" in nats and "not healthy" not in nats, f"NATS heading says {nats!r}"
        assert d.execute_script(TEXTS, "#nats table tbody tr"), "no NATS node or stream rows"
        seen["nats"] = nats
        wait.until(lambda drv: drv.find_element(By.ID, "conn").text == "live", "the live stream connected")
        d.save_screenshot(os.path.join(out, "1-stages-1280x800.png"))

        # 2. a delivery sent now shows up without a reload, within 5 s
        d.execute_script("window.__noReload = 1")
        delivery = str(uuid.uuid4())
        subprocess.run([ghboot, "webhook", "send", "--event", "push", "--payload", push, "--delivery", delivery,
                        "--state-dir", state], check=True, capture_output=True, timeout=30)
        t0 = time.monotonic()
        WebDriverWait(d, 5, poll_frequency=0.1).until(
            lambda drv: delivery in drv.execute_script("return document.getElementById('deliveries').innerText"),
            f"delivery {delivery} shown within 5 s")
        seen["delivery_shown_after_s"] = round(time.monotonic() - t0, 2)
        assert d.execute_script("return window.__noReload") == 1, "the page reloaded"
        row = [t for t in d.execute_script(TEXTS, "#deliveries tbody tr") if delivery in t]
        assert row, f"no row of its own for delivery {delivery}"
        seen["delivery_row"] = row[0]
        assert "push" in row[0] and "github." in row[0], f"delivery row lacks event/subject: {row[0]!r}"
        d.execute_script("document.getElementById('deliveries').scrollIntoView()")
        d.save_screenshot(os.path.join(out, "2-delivery-1280x800.png"))

        # 3. a dead letter, replayed with the page's own button
        subprocess.run([ghboot, "webhook", "send", "--event", "push", "--payload", poison, "--delivery",
                        str(uuid.uuid4()), "--state-dir", state], check=True, capture_output=True, timeout=30)
        dlq_id = WebDriverWait(d, 20, poll_frequency=0.2).until(
            lambda drv: drv.execute_script(
                "const b = document.querySelector('#dead-letters button[data-id]'); return b && b.dataset.id"),
            "a dead letter with a Replay button")
        seen["dead_letter"] = dlq_id
        sel = f"#dead-letters button[data-id='{dlq_id}']"
        assert fresh(lambda: d.find_element(By.CSS_SELECTOR, sel).is_enabled()), \
            "Replay is disabled although the URL carries the token"
        d.execute_script("document.getElementById('dead-letters').scrollIntoView()")
        d.save_screenshot(os.path.join(out, "3-dead-letter-1280x800.png"))
        fresh(lambda: d.find_element(By.CSS_SELECTOR, sel).click())
        WebDriverWait(d, 10, poll_frequency=0.1).until(
            lambda drv: f"Replayed dead letter {dlq_id}" in drv.find_element(By.ID, "notice").text,
            "the page says the dead letter was replayed")
        seen["notice"] = d.find_element(By.ID, "notice").text
        # the live part drops the replayed letter within a second or two (it may come back as a new one:
        # the poison fails again)
        WebDriverWait(d, 5, poll_frequency=0.2).until(
            lambda drv: not drv.find_elements(By.CSS_SELECTOR, f"#dead-letters button[data-id='{dlq_id}']"),
            f"dead letter {dlq_id} gone from the page")
        d.execute_script("document.getElementById('dead-letters').scrollIntoView()")
        d.save_screenshot(os.path.join(out, "4-replayed-1280x800.png"))

        # 4. a phone's width: nothing wider than the screen but the tables' own scroll boxes
        d.set_window_size(390, 844)
        WebDriverWait(d, 5).until(lambda drv: drv.execute_script("return window.innerWidth") <= 400)
        overflow = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        seen["phone_overflow_px"] = overflow
        assert overflow <= 1, f"the page is {overflow}px wider than a phone's screen"
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(os.path.join(out, "5-phone-390-top.png"))
        d.execute_script("document.getElementById('deliveries').scrollIntoView()")
        d.save_screenshot(os.path.join(out, "5-phone-390.png"))
        print(json.dumps(seen))
        return 0
    except Exception as e:
        d.save_screenshot(os.path.join(out, "failed.png"))
        print(json.dumps({"failed": f"{type(e).__name__}: {e}", "seen": seen}))
        return 1
    finally:
        d.quit()


if __name__ == "__main__":
    sys.exit(main())
