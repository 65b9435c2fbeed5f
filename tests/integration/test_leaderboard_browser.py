"""The pool's leaderboard in a real browser (Debian's chromium, Selenium; issue 26): ranked by
the credits the coordinator witnessed, a display name shown as text (a stranger's words: never
markup), the page served with a CSP that allows no script and nothing from elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By

from rma_testkit.served import Served
from tests.contract.test_credits import T0, Pool
from tests.contract.test_proxy import Origin

pytestmark = pytest.mark.integration
MARKUP = "<img src=x onerror=alert(1)>Bob"  # within the 40 characters kept


def test_the_leaderboard_ranks_what_was_witnessed_as_plain_text(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    origin, served = Origin("w"), list[Served]()

    def serve(**kw: Any) -> Served:
        if not served:
            served.append(Served(tmp_path, **kw))
        return served[0]  # one coordinator, on the first worker's clock

    try:
        ada = Pool(serve, tmp_path, origin)
        bob = Pool(serve, tmp_path, origin, name=MARKUP)  # registered, nothing earned yet
        ada.beat()
        for n in (1, 2):
            ada.beat_until(T0 + 600 * n)
            receipt = ada.receipt(T0 + 600 * (n - 1), T0 + 600 * n, ready=600, requests_=0)
            assert ada.deliver(receipt)["results"][0]["outcome"] == "credited"
        url = ada.coord.url
        page = requests.get(f"{url}/leaderboard", timeout=5)
        policy = page.headers["Content-Security-Policy"]
        assert page.status_code == 200 and policy.startswith("default-src 'none'")
        browser.get(f"{url}/leaderboard")
        rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
        cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]
        assert [c[:2] for c in cells] == [["1", "Ada's desktop"], ["2", MARKUP]]
        assert float(cells[0][4]) == pytest.approx(ada.credits()["credits"]["all_time"])
        assert cells[1][4] == "0.00" and bob.credits()["rank"] == 2
        assert browser.find_elements(By.TAG_NAME, "img") == []  # the name stayed text
        assert browser.find_elements(By.TAG_NAME, "script") == []
        assert browser.title == "RMA pool: leaderboard"
    finally:
        for s in served:
            s.close()
        origin.close()
