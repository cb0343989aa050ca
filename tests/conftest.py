"""Shared fixtures: real data from ../shared (never copied into the repo)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CXR14_CACHE = SHARED / "data" / "cxr14_64.npz"
BUNDLE = REPO / "bundles" / "xray_ddrm"
TORCH_HOME = SHARED / "weights" / "torch_home"

# Metric weights (LPIPS squeeze backbone) are read from ../shared/weights; nothing is downloaded.
os.environ.setdefault("TORCH_HOME", str(TORCH_HOME))
# Every network runs in float32 (subprocesses too): a numeric margin then holds on any CPU, with native bf16 (Intel
# AMX) or without (AMD EPYC), which round bf16 differently (xray_restore._compat.BF16_ENV).
os.environ["XRAY_RESTORE_BF16"] = "0"
# Under pytest-xdist (one worker per core) each worker and the processes it starts use one thread: two workers on two
# cores, not four threads fighting over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cxr14_cache() -> Path:
    if not CXR14_CACHE.is_file():
        pytest.fail(f"{CXR14_CACHE} is missing: tests read the real ChestX-ray14 cache from ../shared/data")
    return CXR14_CACHE


@pytest.fixture(scope="session")
def ddrm_num_samples() -> int:
    """The shipped xray_ddrm bundle's ``num_samples`` (its inference.json: the setting's one home)."""
    return int(json.loads((BUNDLE / "configs" / "inference.json").read_text())["num_samples"])


@pytest.fixture(scope="session")
def per_input(ddrm_num_samples) -> int:
    """Derived objects the shipped xray_ddrm bundle writes per restored DICOM: the restored image, plus its
    uncertainty series when it averages more than one posterior sample."""
    return 1 + (ddrm_num_samples > 1)


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


KILL_SWITCH = '''"""Test-only: SIGKILL this process at a chosen moment of a real write or store
(see conftest.kill_switch)."""
import os
import signal

_at = os.environ.get("XR_TEST_KILL_AT", "")
if _at:
    _kind, _, _n = _at.partition(":")
    _count = [0]

    def _due() -> bool:
        _count[0] += 1
        return _count[0] == int(_n)

    if _kind == "write":  # the n-th derived object: half its bytes on disk under the temporary name, then killed
        _replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith(".dcm") and ".tmp" in os.path.basename(str(src)) and _due():
                with open(src, "r+b") as f:
                    f.truncate(os.path.getsize(src) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            return _replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif _kind == "store":  # the n-th STOW-RS call: the PACS has accepted it, the manifest has not recorded it
        from dicomweb_client.api import DICOMwebClient

        _store = DICOMwebClient.store_instances

        def store_instances(self, *args, **kwargs):
            response = _store(self, *args, **kwargs)
            if _due():
                os.kill(os.getpid(), signal.SIGKILL)
            return response

        DICOMwebClient.store_instances = store_instances
'''


@pytest.fixture
def kill_switch(tmp_path_factory):
    """``env(kind, n)``: an environment in which a child Python process kills itself with SIGKILL at the n-th
    derived-object write (``"write"``: after half of its bytes reached the temporary file, before the rename) or the
    n-th STOW-RS (``"store"``: after the PACS accepted it). The product has no test hooks: a ``sitecustomize``
    on the child's PYTHONPATH wraps ``os.replace`` / the DICOMweb client."""
    folder = tmp_path_factory.mktemp("kill_switch")
    (folder / "sitecustomize.py").write_text(KILL_SWITCH)

    def env(kind: str, n: int) -> dict:
        path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, "XR_TEST_KILL_AT": f"{kind}:{n}"}

    return env


PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const result = {scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth,
                  images: images.length, broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).length,
                  charts: document.querySelectorAll('svg').length};
  const out = document.createElement('pre');
  out.id = 'render-probe';
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture
def render_report(tmp_path):
    """``render(report.html) -> dict``: the report rendered by headless Chromium at 1280 px: a screenshot kept in
    the test's tmp dir (``report.png``), the page's own console messages (``console``: the report has no script, so
    any is a fault: a failed resource, a parse error) and, from a probe script run on a copy of the page, its
    ``scrollWidth`` and ``width`` (no horizontal overflow when equal), ``images``/``broken`` and ``charts``."""
    import json
    import re
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is required for the rendering test; .ci/run installs Debian's chromium")
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000", "--hide-scrollbars",
              "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]

    def render(report: Path) -> dict:
        shot = tmp_path / "report.png"
        first = subprocess.run([*common, f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True,
                               timeout=180)
        assert first.returncode == 0, first.stderr[-2000:]
        probe = tmp_path / "probe.html"
        probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        second = subprocess.run([*common, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
        assert second.returncode == 0, second.stderr[-2000:]
        found = re.search(r'<pre id="render-probe">(.*?)</pre>', second.stdout)
        assert found, "the probe did not run: " + second.stderr[-2000:]
        result = json.loads(found.group(1))
        result["console"] = [line for line in (first.stderr + second.stderr).splitlines() if "CONSOLE" in line]
        result["screenshot"] = shot
        return result

    return render
