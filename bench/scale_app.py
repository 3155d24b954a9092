"""The app at a million samples, in a real browser: Explore, the review queue and the Prune page
at 1,000,000 imported 32-d embeddings against the 1,797-sample digits demo, in the same run.

    nice -n 5 .venv/bin/python bench/scale_app.py [--reuse] [--workdir /tmp/thresher-scale-app]

Protocol
--------
1. Workspaces (``--reuse`` keeps what an earlier run built in ``--workdir``):
   - ``large``: ``bench/scale.py``'s synthetic generator at ``--n`` rows x 32-d, 100 classes,
     1,000 clusters, 10 % symmetric label noise, written to Parquet, then ``thresher ingest
     --embeddings``, ``thresher project --method pca`` and ``thresher score --scorers
     SCORERS --device cpu`` (the probes, the label-noise verdict and the named pruning scores),
     each in a fresh process with its wall time recorded.
   - ``small``: ``thresher demo --no-app --label-noise 0.05`` (digits, pixel embeddings, UMAP,
     a full score run).
2. For each workspace: ``thresher app`` on a free port (Streamlit in a child process), Debian's
   Chromium driven by Playwright with the project's flags. Every measurement is taken after the
   same action was done once to warm the server's caches (the page visited once, the control
   changed once), and is the median of ``--repeats`` repeats.
   - Explore draw: from ``page.goto(/explore)`` to the map drawn (the signal the Explore page
     documents in ``/work/notes/readme_explore.md``, see :data:`MAP_DRAWN`).
   - Colour change / filter change: from choosing a new value to the map redrawn (the Filters
     expander is clicked into only once its opening animation is over: a click during it
     scrolls the expander, which closes the multiselect's list).
   - Lasso: a polygon over ~30 % of the points sent the way the page documents, until the page
     reports the selection's size.
   - Review queue: from a "Keep label" click to the next sample's caption on screen (the decision
     committed and the next sample read), as ``bench/review_latency.py`` does.
   - Prune page: from ``page.goto(/prune)`` to the pool's counts on screen.
   - Server memory: RSS of the Streamlit process (and its peak, ``VmHWM``) after the run.
3. Writes ``bench/results/scale_app.json`` and a Markdown table to ``--notes``. ``--merge --steps S``
   measures only the steps S on the large workspace and merges them into the results of an
   earlier full run (dated, with the load average, under ``large.remeasured``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "scale_app.json"
NOTES = Path("/work/notes/readme_pages.md")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DEFAULT_SCORERS = "el2n"


# --------------------------------------------------------------------------- building
def _timed(command: list[str], log: Path) -> float:
    """Run ``command`` (a ``thresher`` command line) in a fresh process; its wall seconds."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        subprocess.run([sys.executable, "-m", "backend.cli", *command], check=True, cwd=REPO, stdout=out,
                       stderr=subprocess.STDOUT)
    return round(time.perf_counter() - started, 1)


def build_large(workdir: Path, *, n: int, scorers: str, reuse: bool) -> dict:
    """The 1M workspace (see the module docstring); returns how long each step took."""
    from bench.scale import write_parquet

    workspace, parquet, record_path = workdir / "large", workdir / "large.parquet", workdir / "large.json"
    if reuse and record_path.exists():
        return json.loads(record_path.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "build.log"
    record: dict = {"workspace": str(workspace), "n": n, "dim": 32, "classes": 100, "scorers": scorers}
    started = time.perf_counter()
    write_parquet(parquet, argparse.Namespace(n=n, dim=32, classes=100, clusters=1000, noise=0.1, spread=1.0,
                                              seed=0))
    record["generate_s"] = round(time.perf_counter() - started, 1)
    record["ingest_s"] = _timed(["ingest", "-w", str(workspace), "--embeddings", str(parquet)], log)
    record["project_pca_s"] = _timed(["project", "-w", str(workspace), "--method", "pca"], log)
    record["score_s"] = _timed(["score", "-w", str(workspace), "--scorers", scorers, "--device", "cpu"], log)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def build_small(workdir: Path, *, reuse: bool) -> dict:
    workspace, record_path = workdir / "small", workdir / "small.json"
    if reuse and record_path.exists():
        return json.loads(record_path.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    record = {"workspace": str(workspace), "n": 1797,
              "build_s": _timed(["demo", "-w", str(workspace), "--no-app", "--label-noise", "0.05"],
                                workdir / "build.log")}
    record_path.write_text(json.dumps(record, indent=2))
    return record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- the server
def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found + [g for c in found for g in _children(c)]


def server_memory_mb(leader: int) -> dict:
    """RSS and peak RSS (VmHWM) of the largest process under ``thresher app`` (Streamlit)."""
    best: dict = {}
    for pid in [leader, *_children(leader)]:
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        except OSError:
            continue
        rss = int(status["VmRSS"].split()[0]) / 1024
        if rss > best.get("rss_mb", -1):
            best = {"pid": pid, "rss_mb": round(rss, 1), "peak_rss_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1)}
    return best


def start_app(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_ADDRESS="127.0.0.1",
               STREAMLIT_SERVER_HEADLESS="true", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "backend.cli", "app", "--workspace", str(root)], env=env,
                                  cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        if server.poll() is not None:
            raise RuntimeError(f"`thresher app` exited with {server.returncode}: see {log}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"`thresher app` did not answer in 180 s: see {log}")


def stop_app(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=30)


# --------------------------------------------------------------------------- in the browser
#: Streamlit has finished the rerun (its status widget shows while a script runs).
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
#: The Explore map is drawn: the density image in place, or the exact scatter's legend (its
#: points are drawn by then). See ``app/components/density_view.py`` (the explore helper's page).
MAP_DRAWN = """(arg) => { const want = arg && arg[0], before = arg && arg[1];
    const box = document.querySelector('.st-key-explore-map');
    if (!box) return false;
    const plot = box.querySelector('.js-plotly-plot');
    const caption = [...box.querySelectorAll('p')].map(p => p.innerText).find(t => /^(Density|Exact) map · /.test(t));
    if (!plot || !plot._fullLayout || !caption) return false;
    if (plot.layout.meta === 'thresher-density-map') {
      if (want && !caption.includes(want)) return false;
      const image = plot.layout.images && plot.layout.images[0];
      return !!plot.querySelector('.imagelayer image') && !!image && (!before || image.source.slice(-80) !== before);
    }
    return plot.querySelectorAll('.legendtext').length > 0 || !!plot.querySelector('canvas');
  }"""
#: The density image's signature (its data URI's tail), to tell a redrawn image from the last one.
IMAGE_SIGNATURE = """() => { const plot = document.querySelector('.st-key-explore-map .js-plotly-plot');
    const image = plot && plot.layout && plot.layout.images && plot.layout.images[0];
    return image ? image.source.slice(-80) : null; }"""
CAPTION = """() => { const box = document.querySelector('.st-key-explore-map');
    return [...box.querySelectorAll('p')].map(p => p.innerText).find(t => /^(Density|Exact) map · /.test(t)); }"""
AXIS_RANGES = "plot => [plot._fullLayout.xaxis.range, plot._fullLayout.yaxis.range]"
EMIT_LASSO = """(plot, path) => plot.emit('plotly_selected',
    {points: [], selections: [{type: 'path', xref: 'x', yref: 'y', path}]})"""
SELECTED = re.compile(r"^[\d,]+ selected$")
NEXT_SAMPLE = """(before) => [...document.querySelectorAll('p')].some(
    p => p.innerText.startsWith('Sample ') && p.innerText.includes(' · split') && !p.innerText.includes(before))"""


def _wait(page, script: str, arg=None) -> None:
    page.wait_for_function(script, arg=arg, polling=50)


def _settle(page) -> None:
    page.wait_for_timeout(300)
    _wait(page, IDLE)


def explore_draw(page, url: str) -> float:
    started = time.perf_counter()
    page.goto(f"{url}/explore")
    _wait(page, MAP_DRAWN)
    seconds = time.perf_counter() - started
    _settle(page)
    return seconds


def redrawn(page, act, want: str | None) -> float:
    """Seconds from ``act()`` to the map redrawn: a new density image under a caption that
    contains ``want``, or an exact map drawn (then Streamlit idle)."""
    before = page.evaluate(IMAGE_SIGNATURE)
    started = time.perf_counter()
    act()
    _wait(page, MAP_DRAWN, [want, before])
    seconds = time.perf_counter() - started
    _settle(page)
    return seconds


def choose_colour(page, option: str, raw: str) -> float:
    """Colour by ``option`` (its shown name; ``raw`` the choice the caption names)."""
    page.get_by_label("Colour by").click()
    return redrawn(page, lambda: page.get_by_role("option", name=option, exact=True).click(), f"colour: {raw}.")


#: The Filters expander has finished opening: its <details> is open and its height has not
#: changed between two checks (its summary's last line is the label, after the icon's name;
#: Streamlit animates it open; a click inside it while it grows
#: scrolls the <details>, and a multiselect closes its list when an ancestor scrolls).
EXPANDER_STILL = """(arg) => { const box = [...document.querySelectorAll('details')].find(
        d => d.querySelector('summary') && d.querySelector('summary').innerText.trim().split('\\n').pop().trim() === arg);
    if (!box || !box.open) return false;
    const height = box.getBoundingClientRect().height;
    const still = window.__expanderHeight === height;
    window.__expanderHeight = height;
    return still; }"""


def open_expander(page, label: str) -> None:
    """Open the expander ``label`` and wait until its opening animation is over (see
    :data:`EXPANDER_STILL`)."""
    page.get_by_text(label, exact=True).first.click()
    page.wait_for_function(EXPANDER_STILL, arg=label, polling=150)


def pick_option(page, box, name: str, *, tries: int = 3):
    """Open the multiselect ``box`` and return the locator of its option ``name`` once listed.
    A list that closed again before the option showed is opened again (at most ``tries``
    times); how many opens it took is the locator's ``opens`` attribute."""
    option = page.get_by_role("option", name=name, exact=True)
    for attempt in range(1, tries + 1):
        box.click()
        try:
            option.wait_for(timeout=3_000)
            option.opens = attempt
            return option
        except Exception:  # noqa: BLE001 - the list closed: open it again
            page.keyboard.press("Escape")
    offered = page.get_by_role("option").all_inner_texts()
    raise RuntimeError(f"no {name!r} among the list's options after {tries} opens: {offered}")


def filter_flagged(page, url: str) -> tuple[float, str, int]:
    """In a fresh session, open Filters and pick "label issue" in "Flagged by (any of)" (the
    samples the score run's verdict flagged): seconds from the option's click to the filtered
    map, its caption, and how many times the list had to be opened."""
    explore_draw(page, url)
    open_expander(page, "Filters")
    box = page.get_by_role("combobox", name="Flagged by (any of)")
    box.wait_for()
    option = pick_option(page, box, "label issue (flagged or not)")
    try:
        seconds = redrawn(page, lambda: option.click(timeout=5_000), "filtered")
    except Exception as exc:
        raise RuntimeError(f"the map was not redrawn filtered ({type(exc).__name__}); its caption: "
                           f"{page.evaluate(CAPTION)!r}") from None
    return seconds, page.evaluate(CAPTION), option.opens


def lasso_path(root: Path, share: float) -> tuple[str, int]:
    """A lasso (an SVG path in data coordinates, 58 vertices, a wavy right edge) around the
    leftmost ``share`` of the workspace's projected points, and how many points it holds (counted
    here by an even-odd crossing count over its edges, independent of the app's code)."""
    import numpy as np

    from backend.storage import Workspace, runs
    from backend.storage.workspace import sql_string

    ws = Workspace.open(root)
    projections = runs.list_runs(ws, "project")
    run_id = projections[projections["status"] == "done"].iloc[0]["run_id"]  # the newest: the map's default
    points = ws.read("projections", columns=["x", "y"], where=f"run_id = {sql_string(run_id)}")
    x, y = points["x"].to_numpy(), points["y"].to_numpy()
    left, bottom, top = x.min() - 1e-3, y.min() - 1e-3, y.max() + 1e-3
    edge = float(np.quantile(x, share))
    spread = 0.01 * (x.max() - x.min())
    right = [(edge + spread * np.sin(6 * np.pi * t), bottom + t * (top - bottom)) for t in np.linspace(0, 1, 56)]
    vertices = [(left, bottom), *right, (left, top)]
    inside = np.zeros(len(x), bool)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    inside = int(inside.sum())
    return "M" + "L".join(f"{vx:.6f},{vy:.6f}" for vx, vy in vertices) + "Z", inside


def lasso(page, path: str) -> tuple[float, int]:
    plot = page.locator(".st-key-explore-map .js-plotly-plot")
    started = time.perf_counter()
    plot.evaluate(EMIT_LASSO, path)
    shown = page.get_by_text(SELECTED)
    shown.wait_for()
    seconds = time.perf_counter() - started
    n = int(shown.inner_text().split()[0].replace(",", ""))
    _settle(page)
    return seconds, n


def review_next(page, url: str, decisions: int) -> dict:
    """Open the review queue (timed to its first sample), then time ``decisions`` "Keep label"
    clicks to the next sample drawn (2 untimed first)."""
    caption = re.compile(r"^Sample (\S+) · split")
    started = time.perf_counter()
    page.goto(f"{url}/review")
    page.get_by_text(caption).first.wait_for()
    opened = time.perf_counter() - started
    _settle(page)
    seconds = []
    for k in range(2 + decisions):
        shown = caption.match(page.get_by_text(caption).first.inner_text()).group(1)
        button = page.get_by_role("button", name=re.compile("^Keep label"))
        started = time.perf_counter()
        button.click()
        _wait(page, NEXT_SAMPLE, shown)
        if k >= 2:
            seconds.append(time.perf_counter() - started)
        _settle(page)
    return {"open_s": round(opened, 3), "next_sample_s": [round(t, 3) for t in seconds],
            "next_sample_median_s": round(statistics.median(seconds), 3)}


#: Each page and the text that shows it has drawn what it reads.
PAGES = {
    "prune": re.compile(r"^Keeps [\d,]+ of [\d,]+ samples"),
    "review": re.compile(r"^Sample \S+ · split"),
    "collapse": re.compile(r"samples with the largest ratio|stored no per-sample distances"),
    "export": re.compile(r"^[\d,]+ rows × \d+ columns"),
    "runs": re.compile(r"^Delete a run$"),
    "search": re.compile(r"^Sample id$"),
}


def page_open(page, url: str, name: str) -> float:
    started = time.perf_counter()
    page.goto(f"{url}/{name}")
    page.get_by_text(PAGES[name]).first.wait_for()
    seconds = time.perf_counter() - started
    _settle(page)
    return seconds


def search_like(page, url: str, sample_id: str) -> float:
    page.goto(f"{url}/search")
    box = page.get_by_label("Sample id")
    box.wait_for()
    _settle(page)
    started = time.perf_counter()
    box.fill(sample_id)
    box.press("Enter")
    page.get_by_text(re.compile(r"^\d+ results$")).wait_for()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(root: Path, name: str, args: argparse.Namespace, *, full: bool) -> dict:
    """Everything timed on one workspace's app (``full``: also the colour, filter, lasso and the
    other pages; the small workspace gives Explore's baseline only)."""
    from playwright.sync_api import sync_playwright

    from backend.storage import Workspace

    server, url = start_app(root, args.workdir / f"app-{name}.log")
    record: dict = {"errors": {}}
    peak = {"rss_mb": 0.0}

    def step(what: str, measure_step) -> None:
        """Run one measurement; a failure (a wait that timed out) is recorded, the rest goes on."""
        print(f"[{name}] {what} ...", file=sys.stderr, flush=True)
        try:
            measure_step()
        except Exception as exc:  # noqa: BLE001 - a bench reports what failed and goes on
            record["errors"][what] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            print(f"[{name}] {what} failed: {record['errors'][what]}", file=sys.stderr, flush=True)
        memory = server_memory_mb(server.pid)
        peak["rss_mb"] = max(peak["rss_mb"], memory.get("rss_mb", 0.0))
        record.setdefault("memory_after_step_mb", {})[what] = {  # VmHWM rising in a step: its transient
            "rss_mb": memory.get("rss_mb"), "peak_rss_mb": memory.get("peak_rss_mb")}

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(args.timeout_s * 1000)

            def explore() -> None:
                record["explore_first_visit_s"] = round(explore_draw(page, url), 3)
                record["explore_caption"] = page.evaluate(CAPTION)
                draws = [explore_draw(page, url) for _ in range(args.repeats)]
                record.update(explore_draw_s=[round(t, 3) for t in draws], explore_draw_median_s=median(draws))

            def colour() -> None:
                explore_draw(page, url)
                changes = [choose_colour(page, option, raw) for option, raw in
                           [("label issue (flagged or not)", "label_issue"), ("label", "label")] * 2]
                record.update(colour_change_s=[round(t, 3) for t in changes[1:]],  # the first one warms
                              colour_change_median_s=median(changes[1:]))

            def filters() -> None:
                filtered = [filter_flagged(page, url) for _ in range(1 + args.repeats)]  # the first warms
                record.update(filter_change_s=[round(t, 3) for t, _, _ in filtered[1:]],
                              filter_change_median_s=median([t for t, _, _ in filtered[1:]]),
                              filter_first_s=round(filtered[0][0], 3), filter_caption=filtered[-1][1],
                              filter_list_opens=[opens for _, _, opens in filtered])

            def lassos() -> None:
                path, expected = lasso_path(root, 0.3)
                record["lasso_points_reference"] = expected
                laps = []
                for _ in range(2):  # the first warms the area's reads
                    explore_draw(page, url)  # a fresh session: no filter, no selection
                    seconds, n = lasso(page, path)
                    laps.append(seconds)
                record.update(lasso_points=n, lasso_s=round(laps[-1], 3), lasso_first_s=round(laps[0], 3))

            def review() -> None:
                record["review"] = review_next(page, url, args.decisions)
                record["review_next_median_s"] = record["review"]["next_sample_median_s"]

            def pages() -> None:
                opens = record.setdefault("page_open_median_s", {})
                for other in PAGES:
                    try:
                        page_open(page, url, other)  # warm
                        opens[other] = median([page_open(page, url, other) for _ in range(args.repeats)])
                    except Exception as exc:  # noqa: BLE001
                        record["errors"][f"page {other}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                if "prune" in opens:
                    record["prune_counts_s"] = opens["prune"]

            def search() -> None:
                ids = sorted(Workspace.open(root).sample_ids())
                search_like(page, url, ids[1])  # warm
                record["search_like_s"] = round(search_like(page, url, ids[len(ids) // 2]), 3)

            step("explore draw", explore)
            if full:
                for what, measure_step in (("colour change", colour), ("filter change", filters), ("lasso", lassos),
                                           ("review queue", review), ("page opens", pages), ("search", search)):
                    if not args.steps or what in args.steps:
                        step(what, measure_step)
            browser.close()
        record["server_memory"] = {**server_memory_mb(server.pid), "largest_rss_seen_mb": peak["rss_mb"]}
    finally:
        stop_app(server)
    return record


TARGETS = [
    ("Explore draw, 1M / 1,797 (warm)", "explore_ratio", "≤ 2x"),
    ("Colour change at 1M", "colour_change_median_s", "< 1 s"),
    ("Filter change at 1M (flagged only)", "filter_change_median_s", "< 1 s"),
    ("Lasso of ~300k points resolved", "lasso_s", "< 2 s"),
    ("Review queue: next sample at 1M", "review_next_median_s", "< 1 s"),
    ("Prune page: counts at 1M", "prune_counts_s", "< 1 s"),
]


def table(result: dict) -> str:
    large, small = result["large"], result["small"]
    flat = {"explore_ratio": result["explore_ratio"], **large}
    limits = {"explore_ratio": 2.0, "colour_change_median_s": 1.0, "filter_change_median_s": 1.0, "lasso_s": 2.0,
              "review_next_median_s": 1.0, "prune_counts_s": 1.0}
    lines = ["| measure | target | measured | met |", "|---|---|---|---|"]
    for what, key, target in TARGETS:
        value = flat.get(key)
        shown = "—" if value is None else (f"{value:.2f}x ({large['explore_draw_median_s']:.2f} s vs "
                                          f"{small['explore_draw_median_s']:.2f} s)" if key == "explore_ratio"
                                          else f"{value:.2f} s")
        met = "—" if value is None else ("yes" if value <= limits[key] else "**no**")
        lines.append(f"| {what} | {target} | {shown} | {met} |")
    memory = large.get("server_memory", {})
    lines.append(f"| Streamlit server memory at 1M (after the run) | report | RSS {memory.get('rss_mb', 0):,.0f} MB, "
                 f"peak {memory.get('peak_rss_mb', 0):,.0f} MB | — |")
    opens = large.get("page_open_median_s", {})
    if opens:
        lines.append("")
        lines.append("| page at 1M (warm, goto to content) | " + " | ".join(opens) + " |")
        lines.append("|---|" + "---|" * len(opens))
        lines.append("| seconds | " + " | ".join(f"{v:.2f}" for v in opens.values()) + " |")
    return "\n".join(lines) + "\n"


#: What every measurement run records besides its steps' figures (kept from the full run on a merge).
RUN_KEYS = ("errors", "explore_first_visit_s", "explore_caption", "explore_draw_s", "explore_draw_median_s",
            "server_memory", "memory_after_step_mb")


def merge_steps(args: argparse.Namespace, large_build: dict) -> int:
    """Measure ``args.steps`` on the large workspace and merge their figures into ``args.out``
    (written by a full run): its other figures stay; each re-measured step is dated, with the
    load average and the server's memory of the run that measured it, under ``large.remeasured``."""
    if not args.steps or not args.out.exists():
        raise SystemExit("--merge needs --steps and an earlier full run's results in --out")
    result = json.loads(args.out.read_text())
    started, load_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getloadavg()
    new = measure(Path(large_build["workspace"]), "large", args, full=True)
    large = result["large"]
    large.update({key: value for key, value in new.items() if key not in RUN_KEYS})
    for what in args.steps:
        large["errors"].pop(what, None)
        if what in new["errors"]:
            large["errors"][what] = new["errors"][what]
        large.setdefault("remeasured", {})[what] = {
            "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
            "explore_draw_median_s": new.get("explore_draw_median_s"), "server_memory": new.get("server_memory"),
            "memory_after_step_mb": new.get("memory_after_step_mb"), "error": new["errors"].get(what)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--scorers", default=DEFAULT_SCORERS, help="pruning scores of the large score run")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/thresher-scale-app"))
    parser.add_argument("--reuse", action="store_true", help="reuse the workspaces an earlier run built")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-s", type=int, default=120, help="longest wait for one step in the browser")
    parser.add_argument("--decisions", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--notes", type=Path, default=NOTES)
    parser.add_argument("--steps", nargs="*", default=[], help="only these steps after the Explore draw, e.g. "
                        "'filter change' (with --try-small or --try-large: checks one step)")
    parser.add_argument("--try-large", action="store_true", help="the chosen --steps on the large workspace only "
                        "(prints, writes nothing)")
    parser.add_argument("--merge", action="store_true", help="the chosen --steps on the large workspace only, "
                        "merged into --out: the other figures are kept, the re-measured ones replaced and "
                        "dated under large.remeasured")
    parser.add_argument("--try-small", action="store_true", help="every measurement on the small workspace only "
                        "(checks the script; writes nothing)")
    args = parser.parse_args(argv)
    small_build = build_small(args.workdir, reuse=args.reuse)
    large_build = build_large(args.workdir, n=args.n, scorers=args.scorers, reuse=args.reuse)
    if args.build_only:
        print(json.dumps({"small": small_build, "large": large_build}, indent=2))
        return 0
    if args.try_small or args.try_large:
        tried = small_build if args.try_small else large_build
        print(json.dumps(measure(Path(tried["workspace"]), "try", args, full=True), indent=2))
        return 0
    if args.merge:
        return merge_steps(args, large_build)
    load_before = os.getloadavg()
    small = measure(Path(small_build["workspace"]), "small", args, full=False)
    large = measure(Path(large_build["workspace"]), "large", args, full=True)
    result = {
        "benchmark": "scale_app",
        "protocol": __doc__,
        "builds": {"small": small_build, "large": large_build},
        "small": small,
        "large": large,
        "explore_ratio": (round(large["explore_draw_median_s"] / small["explore_draw_median_s"], 2)
                          if "explore_draw_median_s" in large and "explore_draw_median_s" in small else None),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    markdown = table(result)
    print(markdown)
    if args.notes:
        text = args.notes.read_text() if args.notes.exists() else ""
        marker = "<!-- scale_app table -->"
        head = text.split(marker)[0].rstrip() + "\n\n" if marker in text else (text + "\n\n" if text else "")
        args.notes.write_text(head + marker + "\n" + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
