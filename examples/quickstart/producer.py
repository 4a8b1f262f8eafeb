"""Enqueue a few jobs and print their results (a worker must be running)."""

from __future__ import annotations

from tasks import add, charge_card, resize_images, send_welcome_email

from nuvom import JobFailedError


def main() -> int:
    handles = {
        "add(2, 3)": add.delay(2, 3),
        "send_welcome_email('ada@example.com')": send_welcome_email.delay("ada@example.com"),
        "charge_card(42, 1999)": charge_card.delay(42, 1999),
        "resize_images(20)": resize_images.delay(20),
        "send_welcome_email('not-an-address')": send_welcome_email.delay("not-an-address"),
    }
    squares = add.map([(i, i) for i in range(10)])
    failures = 0
    for label, handle in handles.items():
        try:
            print(f"{label:40} -> {handle.result(timeout=60)!r}")
        except (ValueError, JobFailedError) as exc:
            job = handle.job()
            print(f"{label:40} -> failed after {job.attempts} attempts: {type(exc).__name__}: {exc}")
            failures += 1
    print(f"{'add.map over 0..9':40} -> {[h.result(timeout=60) for h in squares]!r}")
    # exactly one job is expected to fail: the invalid address, after its retries
    return 0 if failures == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
