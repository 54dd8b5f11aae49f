"""HTML reports: self-contained, escaped, and actually drawn when a browser renders them.

The browser check renders the pages in headless Chromium (Debian's
``chromium`` package), keeps the screenshots under ``test-artifacts/`` for
people to look at, and checks that the charts' colours are on screen.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crmcore.reports.charts import PALETTE
from crmcore.reports.render import html_page
from crmcore.testing.reportdata import generate

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "reports"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.databases("sqlite")  # rendering does not depend on the database


@pytest.fixture
def data(crm):
    return generate(crm, contacts=120, seed=11)


def test_a_page_is_self_contained_and_escapes_what_users_typed(crm, data):
    lead = crm.leads.capture(email="eve@example.com")
    crm.touchpoints.record(lead.id, kind="ad_click", campaign="<script>alert(1)</script>", source="google",
                           occurred_at="2025-06-01T12:00:00+00:00")  # fmt: skip
    result = crm.reports.run("marketing.channels", by="campaign")
    html = html_page(crm, [result])
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # in the table, escaped
    assert html.count("<svg") == 1 and "<text" not in html  # chart text is drawn as paths
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "nothing may be fetched"
    assert not re.search(r"@import|url\((?!#)", html), "only references inside the page (SVG clip paths)"


def test_reports_without_figures_say_so(crm):
    html = html_page(crm, [crm.reports.run("marketing.ads")])
    assert "No data for these parameters." in html and "<svg" not in html


@pytest.mark.slow  # two browser launches and nine charts: about 10 s, the only check that pages really draw
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); CI installs it")
def test_pages_render_in_headless_chromium(crm, data, tmp_path):
    from PIL import Image

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = {
        "dashboard": html_page(crm, crm.reports.dashboard(start="2025-01-01", end="2025-12-31"), title="Dashboard"),
        "conversion-by-month": html_page(
            crm, [crm.reports.run("sales.conversion", by="month", start="2025-01-01", end="2025-12-31")]
        ),
    }
    for name, html in pages.items():
        source = ARTIFACTS / f"{name}.html"
        source.write_text(html, encoding="utf-8")
        shot = ARTIFACTS / f"{name}.png"
        shot.unlink(missing_ok=True)
        height = 9000 if name == "dashboard" else 1400
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / name}", f"--window-size=1280,{height}", f"--screenshot={shot}",
             source.as_uri()],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        image = Image.open(shot).convert("RGB")
        assert image.size == (1280, height)
        drawn = _pixels_near(image, PALETTE[0]) + _pixels_near(image, PALETTE[1])
        assert drawn > 800, f"{name}: the chart's bars or lines are not on screen ({drawn} pixels)"
    # The dashboard holds the bar charts (ads, channels, products, ROI, reps) and the pipeline's funnel.
    orange = _pixels_near(Image.open(ARTIFACTS / "dashboard.png").convert("RGB"), PALETTE[1])
    assert orange > 20000, "the second series (weighted amounts, revenue) is not on screen"


def _pixels_near(image, colour: str, tolerance: int = 12) -> int:
    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(
        count
        for count, pixel in image.getcolors(maxcolors=1 << 24)
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, target, strict=True))
    )
