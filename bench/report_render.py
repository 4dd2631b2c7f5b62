"""report.html as a reader sees it: rendered by headless Chromium, checked in the DOM, screenshot.

    .venv/bin/python bench/report_render.py [--widths 1280,1024,700,500] [--out-dir DIR]
                                            [--doc docs/BENCHMARKS.md] [--chromium PATH]

Writes a run folder with a hand-made trials table (random designs of the convnext space, so
13 dimensions vary and the front table has 19 columns; a long trial id and a long error message)
and its report, then opens report.html in headless Chromium (Debian's `chromium` package) at
each width and checks in the DOM, after the page has loaded:

* the page does not scroll sideways (document scrollWidth <= the viewport's width);
* no element reaches past the viewport's edges, or overflows its own box, unless it sits inside
  a horizontally scrolling container (overflow-x auto, scroll or hidden); the outermost such
  element is reported;
* every <table> sits in such a container, and at the narrow widths the wide tables do scroll
  there (so the check above had something to catch).

It saves a screenshot per width (look at them) and replaces the "Report in a browser" section of
docs/BENCHMARKS.md. Exits 1 if a check fails. :func:`layout_check` is what the test suite runs
when Chromium is installed (tests/test_report.py).

The check runs as a script appended to a copy of the page; Chromium's --dump-dom prints the DOM
after the load event (--virtual-time-budget lets the page settle), with the result written into
a <pre> element. No browser driver is needed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT_ID = "nas-convnext-layout-check"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Runs after the load event; writes a JSON summary into <pre id=RESULT_ID>.
_CHECK_JS = r"""
<script>
window.addEventListener("load", function () {
  var doc = document.documentElement, W = doc.clientWidth;
  function scrolls(el) {
    var o = getComputedStyle(el).overflowX;
    return o === "auto" || o === "scroll" || o === "hidden";
  }
  function scroller(el) {
    for (var a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (scrolls(a)) return a;
    }
    return null;
  }
  function name(el) {
    return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "");
  }
  function inside(el, set) {
    for (var a = el.parentElement; a; a = a.parentElement) { if (set.has(a)) return true; }
    return false;
  }
  // document order: an offender's ancestors come first; only the outermost one is reported
  var bad = [], offenders = new Set(), all = document.body.getElementsByTagName("*");
  for (var i = 0; i < all.length; i++) {
    var el = all[i];
    if (el.tagName === "SCRIPT" || el.tagName === "STYLE") continue;
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    var past = r.right > W + 0.5 || r.left < -0.5;
    var spills = el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && !scrolls(el);
    if ((past || spills) && !scroller(el) && !inside(el, offenders)) {
      offenders.add(el);
      bad.push({element: name(el), left: Math.round(r.left), right: Math.round(r.right),
                scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
                text: (el.textContent || "").replace(/\s+/g, " ").slice(0, 80)});
    }
  }
  var tables = document.getElementsByTagName("table"), outside = [], scrolled = [];
  for (var j = 0; j < tables.length; j++) {
    var box = scroller(tables[j]);
    if (!box) { outside.push(tables[j].id || "table " + j); continue; }
    if (box.scrollWidth > box.clientWidth + 1) scrolled.push(tables[j].id || "table " + j);
  }
  var imgs = document.getElementsByTagName("img"), wideImgs = [];
  for (var k = 0; k < imgs.length; k++) {
    if (imgs[k].getBoundingClientRect().width > W + 0.5) wideImgs.push(imgs[k].alt);
  }
  var out = document.createElement("pre");
  out.id = "__RESULT_ID__";
  out.textContent = JSON.stringify({
    viewport: W, pageScrollWidth: doc.scrollWidth, bad: bad, tables: tables.length,
    tablesOutsideScroll: outside, tablesScrolled: scrolled, images: imgs.length,
    imagesWiderThanPage: wideImgs});
  document.body.appendChild(out);
});
</script>
""".replace("__RESULT_ID__", RESULT_ID)


def find_chromium(path: str | None = None) -> str | None:
    """The Chromium (or Chrome) executable: ``path``, $CHROMIUM, or the first on PATH."""
    for candidate in (path, os.environ.get("CHROMIUM"), *BROWSERS):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


def _chromium(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    # --no-sandbox: Chromium refuses to start as root otherwise; it only opens our own file.
    with tempfile.TemporaryDirectory(prefix="nas-convnext-chromium.") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)


def layout_check(html_path: str | Path, width: int, browser: str | None = None,
                 height: int = 900, timeout: float = 120.0) -> dict[str, Any]:
    """Open ``html_path`` in headless Chromium at ``width`` CSS pixels and return what the DOM
    says: viewport, pageScrollWidth, bad (elements past the page's edges outside a scrolling
    container), tables, tablesOutsideScroll, tablesScrolled, images, imagesWiderThanPage."""
    browser = browser or find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found (install Debian's chromium package)")
    html_path = Path(html_path)
    page = html_path.read_text(encoding="utf-8")
    if "</body>" not in page:
        raise ValueError(f"{html_path} has no </body>")
    with tempfile.TemporaryDirectory(prefix="nas-convnext-layout.") as tmp:
        probe = Path(tmp) / "page.html"
        probe.write_text(page.replace("</body>", _CHECK_JS + "</body>", 1), encoding="utf-8")
        done = _chromium(browser, [f"--window-size={width},{height}", "--virtual-time-budget=10000",
                                   "--dump-dom", probe.as_uri()], timeout)
    m = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', done.stdout, re.S)
    if m is None:
        raise RuntimeError(f"Chromium printed no layout result (exit {done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(html_path: str | Path, png: str | Path, width: int, height: int,
               browser: str | None = None, timeout: float = 120.0) -> Path:
    """A PNG of the top ``height`` pixels of the page at ``width``."""
    browser = browser or find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found (install Debian's chromium package)")
    png = Path(png).resolve()
    done = _chromium(browser, [f"--window-size={width},{height}", "--virtual-time-budget=10000",
                               f"--screenshot={png}", Path(html_path).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")
    return png


def problems(result: dict[str, Any]) -> list[str]:
    """What a reader would see wrong, in words; empty when the page fits."""
    out = []
    if result["pageScrollWidth"] > result["viewport"]:
        out.append(f"the page scrolls sideways: {result['pageScrollWidth']} px of content in a "
                   f"{result['viewport']} px window")
    for b in result["bad"]:
        out.append(f"{b['element']} spans {b['left']}..{b['right']} px (content "
                   f"{b['scrollWidth']} px in {b['clientWidth']} px) outside any scrolling "
                   f"box: {b['text']!r}")
    if result["tablesOutsideScroll"]:
        out.append(f"tables outside a scrolling box: {result['tablesOutsideScroll']}")
    if result["imagesWiderThanPage"]:
        out.append(f"images wider than the page: {result['imagesWiderThanPage']}")
    return out


# ------------------------------------------------------------------------------------------
# A hand-made run
# ------------------------------------------------------------------------------------------


def make_run(folder: Path, n: int = 30, seed: int = 1) -> Path:
    """A run folder whose table has every dimension of the convnext space varying."""
    import numpy as np

    from nas_convnext import presets
    from nas_convnext.design.complexity import complexity
    from nas_convnext.design.space import load_space
    from nas_convnext.results import COLUMNS, write_table

    space = load_space("convnext")
    rng = np.random.default_rng(seed)

    def row(arch, order, reference="", status="completed", trial_id=None, error=""):
        c = complexity(arch)
        top1 = (0.40 + 0.05 * math.log(c.flops / 1e9) + 0.03 * (arch.stem == "patchify")
                + 0.02 * (arch.norm == "ln") + rng.normal(0, 0.01))
        r = {**arch.to_row(), "trial_id": trial_id or f"t{order:03d}", "order": order,
             "reference": reference, "fitted": False, "flops": c.flops, "params": c.params,
             "status": status, "epochs": 3, "top1": float(top1) if status != "error" else math.nan,
             "top5": math.nan, "loss": math.nan, "wall_s": 10.0, "images_per_s": 100.0,
             "node_id": "n0", "optuna_number": order, "proxy_width": arch.width, "seed": 0,
             "error": error}
        assert set(r) == set(COLUMNS)
        return r

    rows = [row(presets()["convnext_t"], 0, "convnext_t"), row(presets()["resnet50"], 1, "resnet50")]
    while len(rows) < n:
        values = {k: v[rng.integers(len(v))] for k, v in space.dimensions.items()}
        try:
            arch = space.make(values)
        except ValueError:
            continue
        if 1.0e9 < complexity(arch).flops <= 4.5e9:
            long_id = "trial-with-a-very-long-identifier-" + "x" * 60 if len(rows) == 5 else None
            rows.append(row(arch, len(rows), trial_id=long_id))
    rows[-1].update(status="error", top1=math.nan,
                    error="RuntimeError: " + "a-very-long-unbroken-error-message-" * 8)
    rows[-2].update(status="stopped_early", epochs=1)
    run = folder / "run"
    run.mkdir(parents=True, exist_ok=True)
    write_table(run, rows)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", default="1280,1024,700,500",
                    help="window widths in CSS pixels (default: %(default)s)")
    ap.add_argument("--out-dir", default=None,
                    help="where the run, report and screenshots go (default: a new temporary "
                         "folder, kept)")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "BENCHMARKS.md"),
                    help="file whose 'Report in a browser' section is replaced (default: "
                         "%(default)s; '' for none)")
    ap.add_argument("--chromium", default=None, help="browser executable (default: chromium "
                    "on PATH)")
    args = ap.parse_args(argv)
    browser = find_chromium(args.chromium)
    if browser is None:
        print("no Chromium found: install Debian's chromium package", file=sys.stderr)
        return 2
    version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    out = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="report-render."))
    out.mkdir(parents=True, exist_ok=True)
    from nas_convnext.report import write_report

    run = make_run(out)
    info = write_report(run, formats=("html",), n_boot=1000)
    page = run / "report.html"
    print(f"report: {page} ({page.stat().st_size / 1e6:.1f} MB, {len(info.varying)} varying "
          f"dimensions); browser: {version}")
    lines, failed = [], False
    for width in (int(w) for w in args.widths.split(",")):
        t0 = time.perf_counter()
        res = layout_check(page, width, browser)
        seconds = time.perf_counter() - t0
        shot = screenshot(page, out / f"report-{width}.png", width, 2400, browser)
        found = problems(res)
        failed |= bool(found)
        verdict = "fits" if not found else f"{len(found)} problem(s)"
        lines.append(f"| {width} | {res['viewport']} | {res['pageScrollWidth']} | {len(res['bad'])} | "
                     f"{res['tables'] - len(res['tablesOutsideScroll'])} of {res['tables']} | "
                     f"{len(res['tablesScrolled'])} | {seconds:.1f} | {verdict} |")
        print(f"width {width} (viewport {res['viewport']}): {verdict}; page scroll width "
              f"{res['pageScrollWidth']}; tables "
              f"scrolling in their box: {res['tablesScrolled']}; screenshot {shot}")
        for p in found:
            print("  " + p)
    if args.doc:
        import textwrap

        from bench._doc import write_section

        intro = (f"`python bench/report_render.py` on a hand-made run of 30 trials (13 varying "
                 f"dimensions: the front table has 19 columns, the excluded table 21), "
                 f"{version}. Per window width: the viewport (the window less its scroll "
                 f"bar), the page's scroll width, elements past the page's edges outside a "
                 f"scrolling box, tables inside a scrolling box, tables that scroll there, and "
                 f"the seconds Chromium took to load and check.")
        body = (textwrap.fill(intro, 96) + "\n\n"
                "| window (px) | viewport | page scroll width | elements outside | tables in a "
                "scroll box | tables scrolling | s | verdict |\n"
                "|---|---|---|---|---|---|---|---|\n" + "\n".join(lines))
        write_section(Path(args.doc), "Report in a browser", body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
