"""The package's modules in the order data flows through them: no module imports one downstream of it.

Every intra-package import (module level, inside a function, or under ``TYPE_CHECKING``) must go to a module of the
same or an earlier stage; samplers take plans and never reach back into the estimator or the policy. A new module
must be given its stage here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "xray_restore"

#: Stages, upstream first (each module in exactly one).
STAGES: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({"errors", "version", "_compat", "atomic", "provenance", "locate", "dct", "metrics", "tiling",
                       "stored"})),
    ("primitives", frozenset({"operators", "networks", "readers", "measurement", "training", "nifti"})),
    ("data", frozenset({"datasets", "transforms", "cache", "baselines"})),
    ("estimation", frozenset({"spectrum", "checks", "degradation", "blur_regressor", "estimation", "anatomy"})),
    ("plan", frozenset({"plan"})),
    ("policy", frozenset({"policy"})),
    ("samplers", frozenset({"ddrm", "conditional", "deepinv_bridge"})),
    ("training", frozenset({"prior"})),
    ("writers", frozenset({"dicom_writer", "png_writer", "report"})),
    ("restore", frozenset({"restore"})),
    ("jobs", frozenset({"batch", "jobs", "evaluation"})),
    ("pacs", frozenset({"pacs", "dimse", "instances"})),
    ("entry", frozenset({"cli", "__init__", "__main__"})),
)
#: Stages a sampler must not import, although they are upstream: a sampler samples what a plan says.
SAMPLER_MAY_NOT = frozenset({"estimation", "policy"})


def _stage_of() -> dict[str, int]:
    return {module: rank for rank, (_, modules) in enumerate(STAGES) for module in modules}


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("xray_restore."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("xray_restore.")}
    return found


def test_every_module_has_a_stage():
    stage = _stage_of()
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules - set(stage) == set(), "give each new module its stage in tests/test_layers.py"
    assert sum(len(m) for _, m in STAGES) == len(stage), "a module is in two stages"


def test_no_module_imports_one_downstream_of_it():
    stage = _stage_of()
    names = [name for name, _ in STAGES]
    wrong = []
    for path in sorted(PACKAGE.glob("*.py")):
        own = stage.get(path.stem)
        for target in sorted(_imports(path) & set(stage)):
            if stage[target] > own:
                wrong.append(f"{path.stem} ({names[own]}) imports {target} ({names[stage[target]]})")
            elif names[own] == "samplers" and names[stage[target]] in SAMPLER_MAY_NOT:
                wrong.append(f"sampler {path.stem} imports {target} ({names[stage[target]]}): it takes plans")
    assert wrong == []


def test_the_layer_check_sees_a_downstream_import(tmp_path):
    """The scan itself works: a sampler importing the policy, or an operator importing restore, is found."""
    sampler = tmp_path / "ddrm.py"
    sampler.write_text("def f():\n    from .policy import RestorationPolicy\n    from xray_restore.restore import x\n")
    assert _imports(sampler) == {"policy", "restore"}
