"""Time per review decision in a real browser: from a click on a review-queue button to the next
sample drawn, in Debian's Chromium driven by Playwright, on the digits demo with 5 % label noise.

    python bench/review_latency.py [--decisions 30] [--workspace W]

Builds the workspace when none is given (ingest, ``--label-noise 0.05``, pixel embeddings, PCA,
a real score run), starts ``thresher app`` on a free port, makes 3 warm-up decisions, then times
``--decisions`` more, cycling Keep label / Unsure / Drop / Accept suggestion (every one a
committed write to the decisions log followed by the next sample's draw). Writes
``bench/results/review_latency.json``. Target (issue 12): median under 0.5 s.
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
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "review_latency.json"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BUTTONS = ("Keep label", "Unsure", "Drop", "Accept suggestion")
NEXT_SAMPLE = """(before) => [...document.querySelectorAll('p')].some(
    p => p.innerText.startsWith('Sample ') && p.innerText.includes(' · split') && !p.innerText.includes(before))"""


def build(root: Path) -> Path:
    from backend.commands import _demo_label_noise
    from backend.config import EmbedSettings, ProjectionSettings
    from backend.jobs.embed_job import embed
    from backend.jobs.ingest_job import ingest
    from backend.jobs.project_job import project
    from backend.jobs.score_job import score
    from backend.storage import Workspace

    ws = Workspace.open(root, create=True)
    ingest(ws, "demo")
    _demo_label_noise(ws, 0.05)
    key = embed(ws, EmbedSettings(model="pixels")).embedding_key
    project(ws, ProjectionSettings(method="pca"), embedding_key=key)
    score(ws, embedding_key=key)
    return ws.root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=30)
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    root = args.workspace or build(Path(tempfile.mkdtemp()) / "digits-noisy")
    port = free_port()
    env = dict(os.environ, STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_ADDRESS="127.0.0.1",
               STREAMLIT_SERVER_HEADLESS="true", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    server = subprocess.Popen([sys.executable, "-m", "backend.cli", "app", "--workspace", str(root)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    timings: list[float] = []
    try:
        for _ in range(180):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/review")
            caption = re.compile(r"^Sample (\S+) · split")
            for k in range(3 + args.decisions):
                shown = caption.match(page.get_by_text(caption).first.inner_text()).group(1)
                button = page.get_by_role("button", name=re.compile("^" + BUTTONS[k % len(BUTTONS)]))
                started = time.perf_counter()
                button.click()
                page.wait_for_function(NEXT_SAMPLE, arg=shown)
                if k >= 3:
                    timings.append(time.perf_counter() - started)
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    ordered = sorted(timings)
    result = {
        "what": "seconds from a click on a review-queue button to the next sample drawn (Chromium, Playwright), "
                "digits demo with 5 % label noise, after 3 warm-up decisions",
        "buttons": list(BUTTONS),
        "decisions": len(timings),
        "median_s": round(statistics.median(timings), 3),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "mean_s": round(statistics.mean(timings), 3),
        "max_s": round(max(timings), 3),
        "target_median_s": 0.5,
        "seconds": [round(t, 3) for t in timings],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
