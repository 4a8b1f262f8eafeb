"""A real browser (Debian's Chromium driven by Selenium + chromedriver) against a
real `nuvom dashboard` and a real `nuvom runworker`: open the overview, filter
the jobs list, open a failed job, click Retry and see it succeed; open the
schedules, one that the worker's scheduler fired, and pause another.

Skipped when Chromium, chromedriver or Selenium is missing, unless NUVOM_CI=1
(CI installs them; there a missing browser fails the test).  Screenshots of
every page go to the test's directory, and to NUVOM_DASHBOARD_SCREENSHOTS when
set (that is how docs/img/dashboard-*.png are made).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job
from nuvom_kernel.schedules import Schedule

TASKS = '''
import time
from pathlib import Path

from nuvom import current_job, task


@task(name="billing.charge")
def charge(customer, cents, marker):
    """Fails the first time (the gateway is down), succeeds when retried."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise ConnectionError(f"payment gateway unreachable while charging {customer}")
    return {"customer": customer, "charged": cents}


@task(name="mail.send")
def send(to, subject):
    return f"sent {subject!r} to {to}"


@task(name="reports.build", retries=1, retry_delay_secs=0)
def build(rows):
    for done in range(0, rows + 1, max(1, rows // 4)):
        current_job().set_progress({"done": done, "total": rows})
    return {"rows": rows}
'''
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900"]


def unavailable(reason: str) -> None:
    if os.environ.get("NUVOM_CI") == "1":
        pytest.fail(f"NUVOM_CI=1 but the browser test cannot run: {reason}")
    pytest.skip(reason)


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        unavailable("Chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("selenium is not installed (pip install 'nuvom-dashboard[test]')")
    return chromium, driver  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def notice_text(browser: Any) -> str:
    """The notice of the page a form's redirect lands on: ``click()`` can return
    before that navigation ends, so wait for the notice instead of looking once."""
    from selenium.webdriver.common.by import By

    found = wait_for("the action's notice", lambda: browser.find_elements(By.CLASS_NAME, "notice"), timeout=30)
    return str(found[0].text)


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tasks.py").write_text(TASKS, encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NUVOM_")}
        self.env.update(NUVOM_PROJECT_ROOT=str(root), PYTHONUNBUFFERED="1", NUVOM_POLL_INTERVAL_SECS="0.2")
        self.procs: list[subprocess.Popen[str]] = []
        self.app = Nuvom(root=root, environ=self.env)

    def nuvom(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "nuvom_cli", *args], cwd=self.root, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.app.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = Project(tmp_path)
    yield proj
    proj.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium, driver_path = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as exc:  # the driver's own message says what is wrong (version, sandbox...)
        unavailable(f"Chromium did not start: {exc}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def screenshot(driver: Any, name: str, out: Path) -> None:
    """The whole page: the window is made as tall as the document first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(600, min(int(height) + 160, 2600)))  # + the window's own frame
    targets = [out]
    if os.environ.get("NUVOM_DASHBOARD_SCREENSHOTS"):
        targets.append(Path(os.environ["NUVOM_DASHBOARD_SCREENSHOTS"]))
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(folder / f"dashboard-{name}.png"))
    driver.set_window_size(1280, 900)


def test_overview_filter_open_failed_job_retry_and_see_it_succeed(project: Project, browser: Any,
                                                                  tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    app = project.app
    marker = tmp_path / "gateway-was-down"
    jobs = [Job(task="mail.send", args=[f"user{i}@example.com", "Your invoice"], queue="mail") for i in range(6)]
    jobs += [Job(task="reports.build", args=[400], queue="reports")]
    jobs += [Job(task="billing.charge", args=["cus_1842", 4999, str(marker)], queue="billing", tags=["vip"])]
    jobs += [Job(task="billing.refund", args=["cus_77"], queue="billing")]  # no such task: a dead letter
    stored = app.enqueue_many(jobs)
    charge_id = stored[-2].id
    app.enqueue(Job(task="mail.send", args=["later@example.com", "Reminder"], queue="mail", eta=time.time() + 3600))
    # a weekday-morning report in Paris (not due during the test) and a digest the worker's scheduler fires now
    morning = Schedule(id="reports.morning", task="reports.build", args=[100], kind="cron", cron="0 9 * * 1-5",
                       timezone="Europe/Paris", options={"queue": "reports"})
    morning.next_fire_at = app.plugins.schedule_next_fire(morning, time.time())
    app.schedules.add_schedule(morning)
    app.schedules.add_schedule(Schedule(id="mail.digest", task="mail.send", args=["team@example.com", "Digest"],
                                        kind="interval", interval_secs=6 * 3600, anchor=time.time(),
                                        next_fire_at=time.time(), timezone="America/New_York",
                                        options={"queue": "mail"}))

    worker = project.nuvom("runworker", "--tasks", "tasks", "--queues", "mail,reports,billing", "-c", "2")
    wait_for("the failed charge", lambda: app.get_job(charge_id).state.value == "failed")
    wait_for("every job to end", lambda: all(app.get_job(j.id).is_terminal() for j in stored))
    wait_for("the digest schedule to fire", lambda: app.schedules.get_schedule("mail.digest").fire_count == 1)  # type: ignore[union-attr]
    port = free_port()
    dash = project.nuvom("dashboard", "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if dash.poll() is not None or worker.poll() is not None:
            out = "" if dash.stdout is None else dash.stdout.read()
            raise AssertionError(f"a process ended early (dashboard {dash.returncode}, worker {worker.returncode}): {out}")
        try:
            with urllib.request.urlopen(base + "/", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False
    wait_for("the dashboard to answer", up, timeout=30)

    out = tmp_path / "screenshots"
    browser.get(base + "/")
    assert browser.title == "Overview · Nuvom dashboard"
    depth = browser.find_element(By.ID, "depth").text
    assert "billing" in depth and "mail" in depth and "reports" in depth
    assert "running" in browser.find_element(By.ID, "workers").text
    assert browser.execute_script("return document.getElementById('chart').naturalWidth") == 760  # the SVG loaded
    screenshot(browser, "overview", out)

    browser.find_element(By.LINK_TEXT, "Jobs").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=state][value=failed]").click()
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait_for("the filtered list", lambda: "state=failed" in browser.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    assert [r.find_element(By.CLASS_NAME, "jobid").text for r in rows] == [charge_id]
    assert "payment gateway unreachable" in rows[0].text
    screenshot(browser, "jobs", out)

    browser.find_element(By.LINK_TEXT, charge_id).click()
    assert browser.find_element(By.ID, "job-state").text == "failed"
    assert "ConnectionError" in browser.page_source and "payment gateway unreachable while charging cus_1842" \
        in browser.page_source
    screenshot(browser, "job-failed", out)

    browser.find_element(By.ID, "retry").click()

    # the click starts a form POST; the notice is on the page the redirect lands on (once: a one-shot cookie)
    assert "queued again" in notice_text(browser)
    # the job page reloads itself every 2 s (a meta refresh, no script) until the job ends
    wait_for("the retried job to succeed in the browser",
             lambda: browser.find_element(By.ID, "job-state").text == "succeeded", timeout=60)
    assert "cus_1842" in browser.find_element(By.ID, "result").text
    assert app.get_job(charge_id).attempts == 2
    screenshot(browser, "job-succeeded", out)

    browser.get(base + f"/jobs/{stored[6].id}")
    wait_for("the progress bar", lambda: "100.0%" in browser.page_source, timeout=10)  # {"done": 400, "total": 400}

    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    assert "billing.refund" in browser.find_element(By.ID, "jobs").text
    assert "unknown task" in browser.find_element(By.ID, "jobs").text
    screenshot(browser, "dead-letters", out)

    browser.find_element(By.LINK_TEXT, "Schedules").click()
    table = browser.find_element(By.ID, "schedules").text
    assert "reports.morning" in table and "cron 0 9 * * 1-5" in table and "Europe/Paris" in table
    assert "mail.digest" in table and "every 21600 s" in table and "America/New_York" in table
    assert " CET (+01:00)" in table or " CEST (+02:00)" in table  # the next fire on Paris's clock
    screenshot(browser, "schedules", out)

    browser.find_element(By.LINK_TEXT, "reports.morning").click()
    assert browser.find_element(By.ID, "schedule-state").text == "active"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#upcoming li")) == 5
    browser.find_element(By.ID, "pause-reports.morning").click()
    assert "paused" in notice_text(browser)
    assert browser.find_element(By.ID, "schedule-state").text == "paused"
    assert app.schedules.get_schedule("reports.morning").state.value == "paused"  # type: ignore[union-attr]
    screenshot(browser, "schedule", out)

    browser.get(base + "/")
    screenshot(browser, "overview", out)  # again, with the retried job in the chart
