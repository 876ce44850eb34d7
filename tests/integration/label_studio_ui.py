"""Label Studio's web interface in headless Chromium, as an annotator uses it: log in through the
login form (a session cookie; the API token does not open pages), open one task's labeling page,
pick one grade per item with real mouse clicks, submit.

The page of our labeling config (`smar/annotation/labeling_config.xml`) renders one Ant Design
radio group of five choices (`input.ant-radio-input`, named by the rubric label) per item, in the
order shown; "Submit" is the button labelled "Submit current annotation".
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from tests.integration.chromium import ChromiumError, HeadlessChromium

CHOICES_PER_ITEM = 5
#: how long the labeling page must stay ready before it is read or clicked (see `open_task`)
SETTLE_S = 2.0
RADIO = "document.querySelectorAll('input.ant-radio-input')"
SUBMIT = "document.querySelector('button[aria-label=\"Submit current annotation\"]')"


def login(browser: HeadlessChromium, url: str, email: str, password: str, *, timeout_s: float = 60.0) -> None:
    """Fill in and send Label Studio's login form; wait until the browser has left it."""
    browser.navigate(f"{url}/user/login/", timeout_s=timeout_s)
    browser.wait_for("!!(document.querySelector('#email') && document.querySelector('#password'))", timeout_s=timeout_s)
    browser.evaluate(
        f"document.querySelector('#email').value = {json.dumps(email)};"
        f"document.querySelector('#password').value = {json.dumps(password)};"
        "document.querySelector('#email').closest('form').submit(); true"
    )
    browser.wait_for(
        "location.pathname.indexOf('/user/login') === -1 && document.readyState === 'complete'", timeout_s=timeout_s
    )


def open_task(
    browser: HeadlessChromium,
    url: str,
    project_id: int,
    ls_task_id: int,
    n_items: int,
    *,
    expect_text: Sequence[str] = (),
    timeout_s: float = 120.0,
) -> None:
    """Open the labeling page of one task (the Data Manager with the task selected) and wait
    until every item's choices are shown and the page's visible text holds every string of
    `expect_text`, and that has held for `SETTLE_S`.

    The Data Manager mounts the labeling panel, unmounts it a few hundred milliseconds later
    (when `&tab=` lands in the URL) and mounts it again; seen by polling the page. A wait that
    returns at the first mount reads the page in the gap: a loaded CI machine once got only the
    Data Manager's columns, without the task's rubric. So the page must stay ready, not just
    become ready."""
    browser.navigate(f"{url}/projects/{project_id}/data?task={ls_task_id}", timeout_s=timeout_s)
    shown = f"Array.from({RADIO}).filter(radio => radio.getClientRects().length > 0).length"
    texts = "".join(f" && document.body.innerText.includes({json.dumps(text)})" for text in expect_text)
    browser.wait_for(
        f"{shown} >= {n_items * CHOICES_PER_ITEM}{texts}", timeout_s=timeout_s, interval_s=0.1, hold_s=SETTLE_S
    )


def choose_grades(browser: HeadlessChromium, grades: Sequence[int], *, attempts: int = 5) -> None:
    """Click grade `grades[i]` of the i-th item shown. A click right after the page settles is
    sometimes swallowed, so each click is checked and repeated (up to `attempts`)."""
    for position, grade in enumerate(grades):
        radio = f"{RADIO}[{position * CHOICES_PER_ITEM + int(grade)}]"
        for _ in range(attempts):
            browser.click(radio)
            time.sleep(0.2)
            if browser.evaluate(f"!!({radio}) && {radio}.checked"):
                break
        else:
            raise ChromiumError(f"item {position}: grade {grade} did not stay selected after {attempts} clicks")


def submit(browser: HeadlessChromium, *, timeout_s: float = 30.0) -> None:
    """Press Submit and wait until the page says the annotation was saved (a toast "Annotation
    saved successfully"; the Submit button turns into "Update")."""
    browser.click(SUBMIT)
    browser.wait_for(
        "document.body.innerText.includes('Annotation saved successfully') || "
        "Array.from(document.querySelectorAll('button')).some(b => b.innerText.trim() === 'Update')",
        timeout_s=timeout_s,
    )
