"""Example tasks: a small shop's background jobs."""

from __future__ import annotations

import time

from nuvom import Retry, current_job, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task(retries=2, retry_delay_secs=0.2, tags=["email"], description="Send the welcome email")
def send_welcome_email(address: str) -> str:
    if "@" not in address:
        raise ValueError(f"not an email address: {address!r}")
    return f"welcome email sent to {address}"


@task(retries=3, retry_delay_secs=0.1, description="Charge a card; the gateway fails the first time")
def charge_card(order_id: int, cents: int) -> dict[str, object]:
    job = current_job()
    if job.attempt == 1:
        raise Retry(delay=0.1, reason="payment gateway busy")
    return {"order": order_id, "charged": cents, "attempts": job.attempt}


@task(timeout_secs=5, description="Resize images, reporting progress")
def resize_images(count: int) -> str:
    job = current_job()
    for i in range(count):
        time.sleep(0.01)
        job.set_progress({"done": i + 1, "total": count})
    return f"resized {count} images"
