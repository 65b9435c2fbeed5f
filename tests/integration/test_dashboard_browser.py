"""The owner's page in a real browser (Debian's chromium and chromium-driver, driven by Selenium)
against a real agent on the real engine: the page lists the agent's containers with their
states; a container removed by hand shows as healing and then running again, without a reload;
the pause button stops the containers and the page says paused; resume brings the same ones back;
a request with a foreign Host or Origin is refused. It saves a screenshot (`make screenshot`
writes docs/dashboard.png from it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from rma_testkit.agent import StartAgent, write_manifest
from rma_testkit.engine import container_spec, managed, running, wait_until

pytestmark = pytest.mark.integration
PAGE_WAIT = 30.0


def rows(page: webdriver.Chrome) -> dict[str, str]:
    """name -> the state the page shows, read from the page itself in one go (it redraws the
    table every 2 s: elements found one call earlier may be gone)."""
    found = page.execute_script(
        "return [...document.querySelectorAll('#containers tbody tr')]"
        ".map((r) => [r.dataset.name, r.dataset.state]);"
    )
    return {str(name): str(state) for name, state in found}


# Records each state each row is drawn with, in the page (window.rmaSeen: name -> states).
SEEN_STATES = """
window.rmaSeen = {};
const note = () => document.querySelectorAll('#containers tbody tr').forEach((r) => {
  (window.rmaSeen[r.dataset.name] ||= []).push(r.dataset.state);
});
new MutationObserver(note).observe(document.body, {childList: true, subtree: true});
note();
"""


def drawn(page: webdriver.Chrome, name: str) -> list[str]:
    return [str(s) for s in page.execute_script("return window.rmaSeen[arguments[0]] || [];", name)]


def until(page: webdriver.Chrome, cond: Callable[[webdriver.Chrome], Any], what: str) -> Any:
    return WebDriverWait(page, PAGE_WAIT, poll_frequency=0.2).until(cond, message=what)


def test_the_owners_page_in_a_real_browser(
    client: docker.DockerClient,
    instance: str,
    registry_image: str,
    tmp_path: Path,
    start_agent: StartAgent,
    browser: webdriver.Chrome,
) -> None:
    names = [f"{instance}-web", f"{instance}-db"]
    specs = [container_spec(n, registry_image) for n in names]
    start_agent(write_manifest(tmp_path / "m.json", specs), instance)
    url = (tmp_path / "state" / f"{instance}.health").read_text().strip()
    ids = wait_until(lambda: (r := running(client, instance)) and len(r) == 2 and r, what="up")
    browser.get(url + "/")
    until(browser, lambda p: rows(p) == dict.fromkeys(names, "running"), "both listed running")
    browser.execute_script("window.sameDocument = 'not reloaded'")

    healed_away(client, browser, ids[names[0]], names[0])
    paused_and_resumed(client, browser, ids)
    assert browser.execute_script("return window.sameDocument") == "not reloaded"

    refusals(url, browser.get_cookie("rma_dashboard"))
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    wanted = os.environ.get("RMA_SCREENSHOT")
    if wanted:
        shutil.copyfile(shot, wanted)


def healed_away(
    client: docker.DockerClient, page: webdriver.Chrome, container_id: str, name: str
) -> None:
    """`docker rm -f` by hand: the row shows healing (for a few seconds), then running. Every
    state the page draws is recorded in the page itself (a MutationObserver), so a loaded
    machine whose WebDriver polls arrive late cannot miss the short healing window."""
    page.execute_script(SEEN_STATES)
    client.api.remove_container(container_id, force=True)
    until(page, lambda p: "healing" in drawn(p, name), "the removed container healing")
    until(page, lambda p: rows(p).get(name) == "running", "running again")
    events = page.find_element(By.ID, "events").text
    assert f"{name}: healed (removed: created again)" in events


def paused_and_resumed(
    client: docker.DockerClient, page: webdriver.Chrome, before: dict[str, str]
) -> None:
    Select(page.find_element(By.ID, "pause-for")).select_by_value("")  # until I resume
    page.find_element(By.ID, "pause").click()
    until(page, lambda p: p.find_element(By.ID, "state").text == "paused", "the page: paused")
    until(page, lambda p: set(rows(p).values()) == {"paused"}, "every row paused")
    instance = next(iter(before)).split("-", 1)[0]
    states = {r["State"] for r in managed(client, instance).values()}
    assert states == {"exited"}  # stopped, kept
    page.find_element(By.ID, "resume").click()
    until(page, lambda p: set(rows(p).values()) == {"running"}, "running again")
    until(page, lambda p: p.find_element(By.ID, "state").text == "converged", "converged")
    assert set(running(client, instance)) == set(before)


def refusals(url: str, cookie: dict[str, Any] | None) -> None:
    """What the page's own requests may do, another site's may not."""
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    jar = {"rma_dashboard": cookie["value"]}
    rebound = requests.get(url + "/api/dashboard", headers={"Host": "evil.example"}, timeout=5)
    assert rebound.status_code == 421
    foreign = requests.post(
        url + "/api/pause",
        json={"for": "1h", "gpu_only": False},
        headers={"Origin": "http://evil.example"},
        cookies=jar,
        timeout=5,
    )
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["refused"]
    assert "access-control-allow-origin" not in {k.lower() for k in foreign.headers}
    no_cookie = requests.post(
        url + "/api/pause", json={"for": "1h", "gpu_only": False},
        headers={"Origin": url}, timeout=5,
    )  # fmt: skip
    assert no_cookie.status_code == 403
