"""Open a page in headless Chromium and read back what plotly drew in it."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

DRAWN_MARKS = ("point", "js-line")
"""Classes of the SVG elements plotly draws for data in a plot area (``g.overplot``, not the legend): a bar
or funnel segment or a marker (``point``), a line (``js-line``)."""


def chromium() -> str:
    """The browser ``make install-browser`` installs."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: run `make install-browser`"
    return found


def rendered_dom(page: Path, profile_dir: Path) -> str:
    """The page's DOM after its scripts ran, from a browser with no network access to anything but the file."""
    completed = subprocess.run(
        [chromium(), "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile_dir}",
         "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@dataclass
class Chart:
    """What a plotly graph div holds once drawn: its SVG layers and its data marks by class."""

    svgs: int = 0
    marks: Counter[str] = field(default_factory=Counter)
    title: str = ""


class _Charts(HTMLParser):
    """Walks the DOM, attributing elements to the plotly graph div they are in."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, Chart] = {}
        self._open: list[tuple[str, str | None, list[str]]] = []
        self._in_title = False

    def _current(self) -> Chart | None:
        chart_id = next((chart for _, chart, _ in reversed(self._open) if chart), None)
        return self.charts.get(chart_id) if chart_id else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        chart_id = attributes.get("id") if "plotly-graph-div" in classes else None
        if chart_id:
            self.charts[chart_id] = Chart()
        in_plot = any("overplot" in ancestor for _, _, ancestor in self._open)
        if tag not in ("path", "rect", "line", "circle", "br", "img", "meta", "input", "hr"):
            self._open.append((tag, chart_id, classes))
        chart = self._current()
        if chart is None:
            return
        if tag == "svg" and "main-svg" in classes:
            chart.svgs += 1
        for mark in DRAWN_MARKS:
            if mark in classes and in_plot:
                chart.marks[mark] += 1
        self._in_title = tag == "text" and "gtitle" in classes

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break
        self._in_title = False

    def handle_data(self, data: str) -> None:
        chart = self._current()
        if chart is not None and self._in_title:
            chart.title += data


def drawn_charts(dom: str) -> dict[str, Chart]:
    """Per plotly graph div (by id), what was drawn in it."""
    parser = _Charts()
    parser.feed(dom)
    return parser.charts
