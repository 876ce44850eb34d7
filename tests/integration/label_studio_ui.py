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
    browser: HeadlessChromium, url: str, project_id: int, ls_task_id: int, n_items: int, *, timeout_s: float = 120.0
) -> None:
    """Open the labeling page of one task (the Data Manager with the task selected) and wait
    until every item's choices are on it."""
    browser.navigate(f"{url}/projects/{project_id}/data?task={ls_task_id}", timeout_s=timeout_s)
    browser.wait_for(f"{RADIO}.length >= {n_items * CHOICES_PER_ITEM}", timeout_s=timeout_s)


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
