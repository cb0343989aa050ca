"""One home per setting: the bundle configs. The code that also names a setting must not disagree with them.

Walks every component of both bundles' configs whose ``_target_`` is ours and every keyword it is given, and the
CLI options that stand for bundle ids; fails on a Python default that restates a configured value differently, or
a CLI option that restates one at all (CLI options default to None: "the bundle's value").
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "bundles").glob("*/configs/*.json"))
#: Library defaults that switch a feature off (no noise, no estimate gate, fp32, zero borders): a class used outside
#: a bundle starts neutral; the bundle turns the feature on. Every other default must equal the configured value.
OFF = (0, 0.0, False, "zeros")


def _components(node, path=""):
    """(path, target, kwargs) of every ``{"_target_": ...}`` in a config."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node["_target_"], {k: v for k, v in node.items() if not k.startswith("_")}
        for key, value in node.items():
            yield from _components(value, f"{path}#{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _components(value, f"{path}#{i}")


def _resolve(config: dict, value):
    """A literal, or the literal an ``@id`` points to (one level); None for expressions."""
    if isinstance(value, str) and value.startswith("@") and "#" not in value:
        value = config.get(value[1:])
    if isinstance(value, str) and value.startswith(("$", "@", "%")):
        return None
    if isinstance(value, (dict,)):
        return None
    return tuple(value) if isinstance(value, list) else value


def _signature_defaults(target: str) -> dict:
    module, _, name = target.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    if dataclasses.is_dataclass(obj):
        return {f.name: f.default for f in dataclasses.fields(obj) if f.default is not dataclasses.MISSING}
    return {k: p.default for k, p in inspect.signature(obj).parameters.items() if p.default is not p.empty}


@pytest.mark.parametrize("config_file", CONFIGS, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_python_defaults_agree_with_every_configured_value(config_file):
    config = json.loads(config_file.read_text())
    checked, disagree = 0, []
    for path, target, kwargs in _components(config):
        if not target.startswith("xray_restore."):
            continue
        defaults = _signature_defaults(target)
        for key, value in kwargs.items():
            value = _resolve(config, value)
            default = defaults.get(key)
            if value is None or default is None or default in OFF:
                continue  # no default, or a library default that leaves a feature off (not a restated setting)
            checked += 1
            default = tuple(default) if isinstance(default, list) else default
            if default != value:
                disagree.append(f"{path}.{key}: config {value!r}, {target} default {default!r}")
    assert disagree == []
    if "inference" in config_file.name:
        assert checked >= 3, "the walk found nothing to compare"


def test_cli_options_for_bundle_ids_do_not_restate_them():
    from xray_restore.cli import build_parser

    bundle_ids = {"blur_sigma", "sigma_y", "output_mode", "samples", "seed", "steps", "batch_size", "lr",
                  "decay_steps", "min_lr_ratio", "split", "protocols"}
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    restated = [f"{name} --{a.dest}={a.default!r}" for name, parser in sub.choices.items() for a in parser._actions
                if a.dest in bundle_ids and a.default is not None
                and not (name in ("batch", "build-cache") and a.dest in ("batch_size", "seed"))]
    assert restated == []


def test_every_tunable_of_both_inferers_is_an_id():
    """η, η_b, σ_y, steps, spacing, samples, … are ids: ``from_bundle(**overrides)``, ``--set`` and ``monai.bundle
    run --id`` all reach them (a literal inside the inferer definition would be silently unreachable)."""
    for bundle in ("xray_ddrm", "xray_conditional"):
        config = json.loads((REPO / "bundles" / bundle / "configs" / "inference.json").read_text())
        literals = {k: v for k, v in config["inferer"].items() if not k.startswith("_")
                    and not (isinstance(v, str) and v.startswith(("@", "$")))}
        assert set(literals) <= {"autocast"}, (bundle, literals)  # autocast: a property of the CPU, not a tunable


def test_train_config_defaults_are_the_bundles_train_json():
    from xray_restore.training import TrainConfig

    for bundle in ("xray_ddrm", "xray_conditional"):
        configured = json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())["train_config"]
        defaults = dataclasses.asdict(TrainConfig())
        assert {k: v for k, v in configured.items() if k in defaults} == defaults, bundle


def test_default_bundle_and_data_paths_have_one_home():
    """The default bundles (``xray_restore.locate``) and the development checkout's shared folder with its files
    (``benchmarks/paths.py``) are written once; every other module, benchmark and script reads them (a docstring may
    name them). The package names no development path: its CLI takes ``--data`` (or ``XRAY_RESTORE_DATA``)."""
    import ast

    homes = {"bundles/xray_ddrm": "xray_restore/locate.py", "bundles/xray_conditional": "xray_restore/locate.py"}
    restated = []
    for path in sorted([*(REPO / "xray_restore").rglob("*.py"), *(REPO / "benchmarks").glob("*.py"),
                        *(REPO / "training").glob("*.py")]):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
                continue
            shared = node.value == "shared" or "../shared" in node.value or "shared/" in node.value
            home = homes.get(node.value, "benchmarks/paths.py" if shared else None)
            if home is not None and str(path.relative_to(REPO)) != home:
                restated.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value}")
    assert restated == []
