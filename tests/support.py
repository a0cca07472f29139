"""The layers' test helpers: a headless Chromium for the browser tests, and the rule for a program this machine
lacks (the kit's rule, conftest.missing)."""

from __future__ import annotations

from conftest import missing


def chromium(playwright):
    """A headless Chromium for the browser tests (compact_mnist.webpage.launch_chromium); where there is none the
    test is skipped, or fails where every test must run."""
    from compact_mnist.webpage import NoBrowser, launch_chromium

    try:
        return launch_chromium(playwright)
    except NoBrowser as error:
        missing(str(error))
