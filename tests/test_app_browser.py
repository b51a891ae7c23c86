"""The Streamlit app in a real browser: Debian's Chromium, driven by Playwright, against
``streamlit run`` on 127.0.0.1. Uploads a CSV, waits for the forecast chart, saves a screenshot
(a test artifact, under ``$LCPFN_TEST_ARTIFACTS`` or ``artifacts/test/``) and checks that the chart
is really drawn.

In CI (``CI=true``) nothing here is skipped: a missing Chromium or Playwright is a failure
(``scripts/setup-chromium.sh`` installs Chromium; Playwright is in the ``dev`` extra).

Run as a script, it takes the README's screenshot with a real model::

    python tests/test_app_browser.py --model default --example accuracy --target 0.9 \
        --out docs/app-screenshot.png
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import lcpfn.app

pytest.importorskip("streamlit")
from lcpfn.app.streamlit_app import COLORS  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often mount a tiny /dev/shm
]
APP = Path(lcpfn.app.__file__).parent / "streamlit_app.py"
REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
SERVER_START_S = 90
CHART_S = 90

CSV = b"epoch,val_accuracy\n" + b"".join(
    f"{e},{0.9 - 0.5 * e ** -0.7:.4f}\n".encode() for e in range(1, 21)
)
MEDIAN_COLOR = tuple(int(COLORS[0][k : k + 2], 16) for k in (1, 3, 5))  # the first curve's colour

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (run scripts/setup-chromium.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install 'lcpfn[dev]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app_args: list[str], log_path: Path) -> Iterator[str]:
    """Run ``streamlit run`` on a free port of 127.0.0.1; yields its URL, stops it on exit.

    Every wait is bounded: the server must answer its health check within ``SERVER_START_S``.
    """
    port = _free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--", *app_args,
    ]
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_path.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer in {SERVER_START_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1100):
    """A page of Debian's Chromium, headless, driven by Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(CHART_S * 1000)
            yield page
        finally:
            browser.close()


def wait_for_chart(page):
    """The first plotly chart, once Plotly has drawn its line traces."""
    from playwright.sync_api import expect

    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible(timeout=CHART_S * 1000)
    expect(chart.locator(".scatterlayer .trace path.js-line").first).to_be_attached(timeout=CHART_S * 1000)
    page.wait_for_timeout(500)  # let the chart's fade-in finish
    return chart


@pytest.fixture
def app_url(tiny_model_dir, tmp_path):
    """The app served with the tiny checkpoint; the server log must end without a traceback."""
    _require_browser()
    log_path = tmp_path / "streamlit.log"
    try:
        with serve(["--model", str(tiny_model_dir)], log_path) as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(os.environ.get("LCPFN_TEST_ARTIFACTS", REPO / "artifacts" / "test"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _color_pixels(png: bytes, rgb: tuple[int, int, int], tol: int = 40) -> int:
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).max(axis=-1) <= tol).sum())


def _summary(png: bytes) -> tuple[float, int]:
    """Share of pixels that are not near-white, and the number of distinct colours."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    ink = float((a.min(axis=-1) < 235).mean())
    colours = len(np.unique(a.reshape(-1, 3), axis=0))
    return ink, colours


def test__browser__upload_csv_draws_the_forecast(app_url, artifacts_dir):
    from playwright.sync_api import expect

    with chromium_page() as page:
        page.goto(app_url, wait_until="domcontentloaded")
        expect(page.get_by_text("Where is this learning curve heading?")).to_be_visible(timeout=CHART_S * 1000)
        # The prompt appears once the model is loaded: from here on only the forecast is timed.
        expect(page.get_by_text("Upload a CSV of a training run")).to_be_visible(timeout=CHART_S * 1000)
        start = time.monotonic()
        page.locator('input[type="file"]').set_input_files(
            files=[{"name": "run.csv", "mimeType": "text/csv", "buffer": CSV}]
        )
        expect(page.get_by_text("Median at epoch")).to_be_visible(timeout=CHART_S * 1000)
        numbers_s = time.monotonic() - start
        chart = wait_for_chart(page)
        chart_s = time.monotonic() - start - 0.5  # less wait_for_chart's settling pause
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.locator("[data-testid='stAlertContentError']").count() == 0
        shot = page.screenshot()
        chart_shot = chart.screenshot()
    (artifacts_dir / "app-browser.png").write_bytes(shot)
    (artifacts_dir / "app-browser-chart.png").write_bytes(chart_shot)
    (artifacts_dir / "app-browser-timing.txt").write_text(
        f"upload to forecast numbers shown: {numbers_s:.2f} s\nupload to chart drawn: {chart_s:.2f} s\n"
    )

    ink, colours = _summary(shot)
    assert ink > 0.02 and colours > 50, (ink, colours)  # not a blank page
    chart_ink, _ = _summary(chart_shot)
    assert chart_ink > 0.02, chart_ink
    # The median forecast and the observed points are drawn in the first curve's colour.
    assert _color_pixels(chart_shot, MEDIAN_COLOR) > 200


def take_screenshot(out: Path, *, model: str, example: str, target: float | None) -> None:
    """The README's screenshot: the app with a built-in example, forecast by a real model."""
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "streamlit.log"
        with serve(["--model", model, "--example", example], log_path) as url, chromium_page(1400, 1000) as page:
            page.goto(url, wait_until="domcontentloaded")
            wait_for_chart(page)
            if target is not None:
                box = page.get_by_label("Target value (optional)")
                box.fill(str(target))
                box.press("Enter")
                box.blur()
                chart = wait_for_chart(page)
                expect(chart.get_by_text("target")).to_be_visible(timeout=CHART_S * 1000)
                page.wait_for_timeout(1000)
            if page.locator("[data-testid='stAlertContentError']").count():
                raise RuntimeError(page.locator("[data-testid='stAlertContentError']").first.inner_text())
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
    print(f"screenshot written to {out}")


if __name__ == "__main__":
    # python tests/test_app_browser.py --model default --example accuracy --out docs/app-screenshot.png
    parser = argparse.ArgumentParser(description="Take the README screenshot of the app.")
    parser.add_argument("--model", default="default")
    parser.add_argument("--example", default="accuracy")
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "app-screenshot.png")
    a = parser.parse_args()
    take_screenshot(a.out, model=a.model, example=a.example, target=a.target)
