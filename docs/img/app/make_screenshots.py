"""The screenshots of docs/app.md: the grid with the class sidebar, one image enlarged, the export view and the
retrain preview, saved as PNG (1280 x 800) beside this script.

    python docs/img/app/make_screenshots.py                                  # a tiny project made here (1 min)
    python docs/img/app/make_screenshots.py --images FOLDER --model models/ndsb   # real images (2 min on a core)

Without ``--images`` a tiny project is made by the real pipeline, as the app's tests do: synthetic plankton-like
images (8 classes of 20, one folder each), a 16 px DDPM trained 5 steps, features, a linear probe, its bundle and
``app init``. With ``--images`` (one folder per class, named as the model's classes, as NDSB's images are) a
sample of its largest class folders (``--classes`` of ``--per-class`` random images, linked into a temporary
folder) is made into a project with ``--model`` (``app init``). docs/app.md's screenshots are of 10 NDSB classes of
12 images with the shipped model (``--images`` the NDSB training images, ``--model models/ndsb``).

Then ``diffprobe app --project`` serves it on 127.0.0.1 and headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium, as ``tests/app/test_browser.py`` does) is shown what a person starting on
the project would see. The person (perfect: an image's folder is its class) has gone through the 8 most confident
images of each of the 10 largest predicted classes, validating the right ones and moving the others to their
class, through the API. Then the grid of the largest predicted class (or ``--show``'s), with the sidebar filtered
by the first part of its name; that class's first image enlarged; *Views -> Export*; and *Preview* pressed. The
preview's answer is the header's message, one line in the app (hover for the whole text): for its screenshot the
message is let wrap over 4 lines. Each PNG is reduced to 256 colours, to stay small.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = (1280, 800)
WAIT = 60
USER = {"X-Diffprobe-User": "docs"}


def tiny_project(root: Path) -> Path:
    """A tiny project made by the real pipeline in seconds: ``diffprobe demo``'s on synthetic plankton, shrunk."""
    from diffprobe.app.project import init_project  # noqa: PLC0415 - only this mode trains
    from diffprobe.workflows.pipeline import demo  # noqa: PLC0415

    demo(root / "demo", image_size=16, steps=5, channels=(16, 32), timesteps=(10,), n_per_class=20, progress=False)
    out = root / "project"
    init_project(out, root / "demo" / "synthetic", root / "demo" / "bundle", chunk=64, progress=False)
    return out


def sample_project(root: Path, images: Path, model: Path, classes: int, per_class: int, seed: int) -> Path:
    """``classes`` of the largest class folders of ``images``, ``per_class`` random images of each, linked into
    ``root/images`` and made into a project (``app init``)."""
    from diffprobe.app.project import init_project  # noqa: PLC0415

    folders = sorted((d for d in images.iterdir() if d.is_dir()), key=lambda d: (-sum(1 for _ in d.iterdir()), d.name))
    if not folders:
        raise SystemExit(f"{images}: no class folders")
    rng = random.Random(seed)
    for folder in folders[:classes]:
        files = sorted(f for f in folder.iterdir() if f.is_file())
        (root / "images" / folder.name).mkdir(parents=True)
        for f in rng.sample(files, min(per_class, len(files))):
            (root / "images" / folder.name / f.name).symlink_to(f.resolve())
    out = root / "project"
    init_project(out, root / "images", model, progress=False)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(project: Path):
    """``diffprobe app --project`` in its own process; yields its address."""
    port = free_port()
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "diffprobe.cli", "app", "--project", str(project), "--port",
                             str(port), "--user", "docs"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/project", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the app server did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait()


def chromium():
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        raise SystemExit("no chromium / chromedriver found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={SIZE[0]},{SIZE[1]}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    # The window's size less the browser's frame: make the page itself SIZE.
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    browser.set_window_size(2 * SIZE[0] - inner[0], 2 * SIZE[1] - inner[1])
    return browser


def decide_some(url: str, also: str | None = None, classes: int = 10, per_class: int = 8) -> list[str]:
    """The ``per_class`` most confident images of the ``classes`` largest predicted classes (and of ``also``), each
    validated when its folder is the class it is shown under, else moved to its folder's class (left alone when
    the folder is not a class); returns the classes, largest first."""
    counts = httpx.get(f"{url}/api/project").json()["classes"]
    names = {c["name"] for c in counts}
    largest = [c["name"] for c in sorted(counts, key=lambda c: -c["total"]) if c["total"]][:classes]
    for name in largest + ([also] if also and also not in largest else []):
        page = httpx.get(f"{url}/api/objects", params={"label": name, "per_page": per_class}).json()["objects"]
        truth = {o["id"]: Path(o["sample"]).name for o in page}
        right = [i for i, t in truth.items() if t == name]
        moves: dict[str, list[int]] = {}
        for i, t in truth.items():
            if t != name and t in names:
                moves.setdefault(t, []).append(i)
        for action, ids, label in [("validate", right, None), *(("move", v, k) for k, v in moves.items())]:
            if ids:
                httpx.post(f"{url}/api/decisions", json={"ids": ids, "action": action, "label": label},
                           headers=USER).raise_for_status()
    return largest


def shoot(browser, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    browser.save_screenshot(str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256)
    small.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB", flush=True)
    return path


def screenshots(url: str, out: Path, show: str | None = None) -> list[Path]:
    from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    names = [c["name"] for c in httpx.get(f"{url}/api/project").json()["classes"]]
    if show and show not in names:
        raise SystemExit(f"--show {show}: not a class of the project")
    largest = decide_some(url, also=show)
    shown = show or largest[0]
    prefix = shown.split("_")[0]
    search = prefix if 1 < sum(n.startswith(prefix) for n in names) < len(names) else ""
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    wait = WebDriverWait(browser, WAIT)

    def images_drawn() -> bool:
        return browser.execute_script(
            "const i = [...document.querySelectorAll('#grid .tile img')];"
            "return i.length > 0 && i.every(x => !x.getBoundingClientRect().bottom"
            " || x.getBoundingClientRect().top > innerHeight || (x.complete && x.naturalWidth > 0))")

    try:
        browser.get(url)
        wait.until(lambda _d: browser.find_elements(By.CSS_SELECTOR, f'#classes li[data-label="{shown}"]'))
        if search:
            browser.find_element(By.ID, "class-search").send_keys(search)
        browser.find_element(By.CSS_SELECTOR, f'#classes li[data-label="{shown}"]').click()
        wait.until(lambda _d: browser.find_element(By.ID, "view-title").text == shown and images_drawn())
        paths = [shoot(browser, out, "app-grid-sidebar")]

        first = browser.find_element(By.CSS_SELECTOR, "#grid .tile")
        ActionChains(browser).double_click(first).perform()
        wait.until(lambda _d: browser.find_element(By.ID, "detail").is_displayed()
                   and browser.execute_script(
                       "const i = [document.getElementById('detail-image'),"
                       " ...document.querySelectorAll('#detail-neighbours img')];"
                       "return i.length > 1 && i.every(x => x.complete && x.naturalWidth > 0)"))
        paths.append(shoot(browser, out, "app-detail"))
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        wait.until(lambda _d: not browser.find_element(By.ID, "detail").is_displayed())

        browser.find_element(By.ID, "show-export").click()
        wait.until(lambda _d: browser.find_element(By.ID, "export-view").get_attribute("data-loaded"))
        paths.append(shoot(browser, out, "app-export"))

        browser.find_element(By.CSS_SELECTOR, f'#classes li[data-label="{shown}"]').click()
        wait.until(lambda _d: browser.find_element(By.ID, "view-title").text == shown and images_drawn())
        browser.find_element(By.ID, "preview-retrain").click()
        wait.until(lambda _d: browser.find_element(By.ID, "message").text.startswith("a retrain now would"))
        browser.execute_script(  # the message over 4 lines, the header's other items as they are
            "for (const e of document.querySelectorAll('header > *')) e.style.flexShrink = '0';"
            "Object.assign(document.getElementById('message').style, {whiteSpace: 'normal', flex: '1 1 0',"
            " display: '-webkit-box', webkitBoxOrient: 'vertical', webkitLineClamp: '4'})")
        paths.append(shoot(browser, out, "app-preview"))
    finally:
        browser.quit()
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, help="one folder per class, named as the model's classes (default: a "
                                                "tiny synthetic project made here)")
    ap.add_argument("--model", type=Path, help="with --images: the bundle (diffprobe app init --model)")
    ap.add_argument("--classes", type=int, default=10, help="with --images: the largest class folders taken")
    ap.add_argument("--per-class", type=int, default=12, help="with --images: random images of each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", help="the class whose grid is shown (default: the largest predicted)")
    ap.add_argument("--out", type=Path, default=HERE, help="where the PNGs go (default: beside this script)")
    a = ap.parse_args()
    if a.images and not a.model:
        ap.error("--images needs --model")
    with tempfile.TemporaryDirectory() as tmp:
        if a.images:
            project = sample_project(Path(tmp), a.images, a.model, a.classes, a.per_class, a.seed)
        else:
            project = tiny_project(Path(tmp))
        with serving(project) as url:
            screenshots(url, a.out, a.show)


if __name__ == "__main__":
    main()
