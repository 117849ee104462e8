"""The HTML report: self-contained, escaped, and right in a real browser (Debian's headless
Chromium driven by selenium through chromedriver) at a laptop's width and at 1024px, from a real
seed-lab run.

Without Chromium the browser tests skip (run .ci/install-browser); in CI (CI=true) they fail
instead. MLRUN_UPDATE_SCREENSHOT=1 also writes the 1280px full-page screenshot to docs/report.png
(the README's)."""

import os
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ROOT, run_mlrun

from runner.report_html import render_html

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
SIZES = [(1280, 900), (1024, 768)]


@pytest.fixture(scope="module")
def html_report(seed_lab, tmp_path_factory):
    """The seed lab's report, made by the CLI: (path, text)."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = run_mlrun(
        "report", seed_lab["spec"], "--format", "html", "-o", out, cwd=seed_lab["root"], check=0
    )
    assert f"Wrote {out}" in proc.stdout
    return out, out.read_text()


# --- the file ------------------------------------------------------------------------------------


class Refs(HTMLParser):
    """Every tag with its attributes, to look at what the page would load."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_report_is_one_self_contained_file(html_report):
    _, text = html_report
    refs = Refs()
    refs.feed(text)
    urls = [a[k] or "" for _, a in refs.tags for k in ("src", "href") if k in a]
    assert urls, "expected at least the embedded images"
    assert not [u for u in urls if u.strip().lower().startswith(("http:", "https:", "//"))]
    assert not [a for t, a in refs.tags if t == "script" and "src" in a]
    assert not [a for t, a in refs.tags if t == "link" and "stylesheet" in (a.get("rel") or "")]
    assert "@import" not in text and "url(" not in text
    images = [a for t, a in refs.tags if t == "img"]
    assert {a["alt"] for a in images} >= {"ROC-Curve.png", "training_confusion_matrix.png"}
    assert all(a["src"].startswith("data:image/png;base64,") for a in images)


def test_html_report_shows_the_seed_labs_results(html_report):
    _, text = html_report
    for expected in (
        "mlflow-tracking",
        "Use MLflow to track training jobs",
        "train-mlflow",
        "train-autolog",
        "Regularization rate",
        "diabetes-training",
        "best-auc",
        "Completed",
        "metrics.AUC &gt; 0.8 and tags.model_type = &#x27;LogisticRegression&#x27;",
    ):
        assert expected in text
    assert text.count("<svg") >= 2


def report_value(**overrides) -> dict:
    """A small report value, as runner.report.build makes them, for rendering without a lab."""
    job = {
        "job": "train",
        "status": "Completed",
        "run_id": "0123456789abcdef",
        "experiment": "exp",
        "start": "2026-01-02T03:04:05.678Z",
        "duration": 8.5,
        "error": None,
        "params": {"C": "1.0"},
        "metrics": {"loss": 0.25, "acc": 0.9},
        "tags": {},
        "artifacts": ["plot.png"],
        "where": "/tmp/runs/train",
        "previous": {
            "run_id": "fedcba9876543210",
            "metrics": {"loss": 0.5},
            "change": {"loss": -0.25},
        },
        "histories": {"loss": [[0, 1.0], [1, 0.5], [2, 0.25]]},
        "images": [{"path": "plot.png", "mime": "image/png"}],
    }
    run = {
        "run_id": job["run_id"],
        "run_name": "train-run",
        "job": "train",
        "status": "Completed",
        "start": "2026-01-02T03:04:05Z",
        "duration": 8.6,
        "params": job["params"],
        "metrics": job["metrics"],
        "tags": {},
    }
    value = {
        "format_version": 1,
        "lab": "lab",
        "description": "A lab",
        "target": "local",
        "tracking_uri": "sqlite:///x.db",
        "generated": "2026-01-02T03:05:00Z",
        "jobs": [job],
        "experiments": [{"name": "exp", "metrics": ["acc", "loss"], "runs": [run]}],
        "queries": [
            {
                "name": "q",
                "experiment": "exp",
                "filter": "metrics.acc > 0.5",
                "order_by": [],
                "max_results": 5,
                "runs": [run],
                "error": None,
            }
        ],
    }
    value.update(overrides)
    return value


def test_every_string_is_escaped():
    evil = "<script>alert(1)</script>"
    value = report_value(lab="lab", description=evil)
    value["jobs"][0].update(job=evil, error=evil, params={evil: evil}, tags={"t": evil})
    value["queries"][0].update(filter=evil, error=evil, runs=[])
    text = render_html(value)
    assert "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_changes_histories_errors_and_missing_images_are_rendered():
    value = report_value()
    value["queries"].append(
        {
            "name": "bad",
            "experiment": "exp",
            "filter": "metrics.x >>> 1",
            "order_by": [],
            "max_results": 5,
            "runs": [],
            "error": "MLflow rejected the search: bad comparator",
        }
    )
    text = render_html(value)
    assert "&#9660; -0.25" in text  # loss went down against the previous run
    assert "<polyline" in text and "loss" in text  # the history's line chart
    assert "MLflow rejected the search: bad comparator" in text
    assert "plot.png" in text and "not embedded" in text and "<img" not in text


def test_data_assets_and_models_have_sections_of_their_own():
    value = report_value(
        data=[{"name": "diabetes-data", "version": "2", "type": "uri_file", "summary": "3 rows"}],
        models=[
            {
                "name": "diabetes-model",
                "version": "2",
                "type": "mlflow_model",
                "source": "job.train artifacts/model",
                "job": "train",
                "run_id": "0123456789abcdef",
                "uri": "models:/diabetes-model/2",
            }
        ],
    )
    text = render_html(value)
    assert '<a href="#data">Data assets</a>' in text and '<a href="#models">Models</a>' in text
    models = text.split('<section id="models">')[1].split("</section>")[0]
    assert "diabetes-model" in models and "v2" in models and "job.train artifacts/model" in models
    assert '<code title="0123456789abcdef">0123456</code>' in models
    assert '<section id="models">' not in render_html(report_value())  # none: no section


# --- in a browser --------------------------------------------------------------------------------


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    if missing:
        reason = (
            f"needs {', '.join(missing)}: "
            "run .ci/install-browser to install Chromium and chromedriver"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have a browser: {reason}")
        print(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver, logging the page's console."""
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mlrun-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: Path, width: int, height: int) -> list[dict]:
    """Load the file at this window size; returns what its console said."""
    driver.set_window_size(width, height)
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.execute_script("return window.innerWidth") == width
    return driver.get_log("browser")


VISIBLE = """const e = arguments[0], r = e.getBoundingClientRect(), s = getComputedStyle(e);
return (r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'
        && +s.opacity > 0);"""


def test_console_errors_would_be_seen(browser, tmp_path):
    """The console check below is not vacuous: an error on a page does show up in the log."""
    page = tmp_path / "probe.html"
    page.write_text(
        "<!DOCTYPE html><title>probe</title><script>console.error('mlrun-probe')</script>"
    )
    log = open_page(browser, page, 800, 600)
    assert any("mlrun-probe" in e["message"] and e["level"] == "SEVERE" for e in log)


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}px" for w, _ in SIZES])
def test_html_report_in_chromium(browser, html_report, tmp_path, width, height):
    path, _ = html_report
    log = open_page(browser, path, width, height)
    assert [e for e in log if e["level"] in ("SEVERE", "WARNING")] == []

    from selenium.webdriver.common.by import By

    charts = browser.find_elements(By.CSS_SELECTOR, "figure.card")
    captions = {c.find_element(By.TAG_NAME, "figcaption").text: c for c in charts}
    for metric in ("AUC", "Accuracy"):  # bar charts of the hand-logged run's metrics
        svg = captions[metric].find_element(By.TAG_NAME, "svg")
        assert browser.execute_script(VISIBLE, svg), f"{metric} chart not visible"
        assert svg.find_elements(By.TAG_NAME, "rect")
    roc = browser.find_element(By.CSS_SELECTOR, "img[alt='ROC-Curve.png']")
    browser.execute_script("arguments[0].scrollIntoView()", roc)
    assert browser.execute_script(VISIBLE, roc)
    assert (
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", roc) > 0
    )
    assert (
        roc.find_element(By.XPATH, "..").find_element(By.TAG_NAME, "figcaption").text
        == "ROC-Curve.png"
    )
    for img in browser.find_elements(By.TAG_NAME, "img"):
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 0, (
            img.get_attribute("alt")
        )

    widths = browser.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], f"page is {widths[0]}px wide in a {widths[1]}px window"
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(tmp_path / f"report-{width}.png"))
    if width == 1280 and os.environ.get("MLRUN_UPDATE_SCREENSHOT") == "1":
        save_readme_screenshot(browser, width)


def save_readme_screenshot(driver, width: int) -> None:
    """The whole page at this width, as docs/report.png (a 256-colour PNG to keep it small)."""
    from PIL import Image

    full = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": width, "height": full, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", metrics
    )  # taller than a window may be
    target = ROOT / "docs" / "report.png"
    target.parent.mkdir(exist_ok=True)
    try:
        driver.save_screenshot(str(target))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    Image.open(target).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(
        target, optimize=True
    )
