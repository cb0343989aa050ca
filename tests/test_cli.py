"""The console script: a real ``python -m xray_restore`` process where the process itself is the claim (a usage
error's exit status; a failed input's exit status, with no traceback, and a FIFO that must not hang it);
``main(argv)`` in this process (:func:`in_process`: the same exit status and words, without paying the package's
import again) for the rest."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xray_restore", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def in_process(capsys):
    """``in_process(*args)``: ``main(args)`` run in this process, as a ``CompletedProcess`` with the exit status
    ``python -m xray_restore`` would exit with (``SystemExit``'s code; a string code is printed to stderr and is
    status 1, as the interpreter does) and what it wrote on stdout/stderr. An exception escaping ``main`` (a
    traceback, in a real process) fails the test."""
    from xray_restore.cli import main

    def call(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code
            if isinstance(code, str):
                print(code, file=sys.stderr)
                code = 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, 0 if code is None else code, out, err)

    return call


@pytest.fixture(scope="module")
def small_cache(cxr14_cache, tmp_path_factory) -> Path:
    """A cut of the real ChestX-ray14 cache (its first 16 train, 8 val and 8 test images, every array of each):
    the commands read it as they read the whole cache, and a training run's validation pass covers 8 images, not
    165."""
    path = tmp_path_factory.mktemp("small_cache") / "cxr14_64.npz"
    keep = {"train": 16, "val": 8, "test": 8}
    with np.load(cxr14_cache) as data:
        arrays = {k: data[k][: keep[k.split("_")[0]]] if k.split("_")[0] in keep else data[k] for k in data.files}
    np.savez(path, **arrays)
    return path


def test_usage_error_exit_code_2():
    result = run("no-such-command")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "invalid choice" in result.stderr and "no-such-command" in result.stderr, result.stderr[-2000:]


def test_bad_input_names_the_file_and_exits_1(tmp_path, in_process):
    result = in_process("build-cache", "--csv", str(tmp_path / "missing.csv"), "--images", str(tmp_path), "-o",
                        str(tmp_path / "c.npz"))
    assert result.returncode == 1
    assert "missing.csv: CSV file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_build_cache_from_real_pngs(tmp_path, in_process):
    out = tmp_path / "cache.npz"
    result = in_process("build-cache", "--csv", str(SHARED / "cxr14_png" / "Data_Entry_2017.csv"), "--images",
                        str(SHARED / "cxr14_png"), "-o", str(out), "--workers", "1")
    assert result.returncode == 0, result.stderr
    with np.load(out) as data:
        assert sum(data[f"{s}_images"].shape[0] for s in ("train", "val", "test")) == 3


def test_evaluate_conditional_bundle_on_val(tmp_path, small_cache, in_process):
    """``evaluate --model conditional``: the conditional bundle's predictor and one-sample refinement, beside the
    linear baselines, on the first 4 real val images (the LMMSE prior fitted on the cut cache's train images)."""
    out = tmp_path / "val.json"
    result = in_process("evaluate", "--model", "conditional", "--data", str(small_cache), "--limit", "4",
                        "--samples", "1", "--device", "cpu", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "conditional_1sample" in result.stdout and "predictor" in result.stdout
    import json

    methods = json.loads(out.read_text())["protocols"]["realistic"]["methods"]
    assert methods["predictor"]["psnr"] > methods["blurred"]["psnr"]


def test_training_options_build_the_train_config():
    from xray_restore.cli import _train_config, build_parser

    for command, bundle in (("train-prior", "bundles/xray_ddrm"), ("train-conditional", "bundles/xray_conditional")):
        args = build_parser().parse_args([command, "--data", "cache.npz", "--steps", "500", "--decay-steps", "100",
                                          "--min-lr-ratio", "0.05", "--lr", "1e-4", "--fp32"])
        config = _train_config(args, bundle)
        assert (config.max_steps, config.decay_steps, config.min_lr_ratio, config.lr, config.autocast) == (
            500, 100, 0.05, 1e-4, False)
        untouched = _train_config(build_parser().parse_args([command, "--data", "cache.npz"]), bundle)
        assert untouched.max_steps == 100000 and untouched.lr == 3e-4  # the bundle's train.json, not a CLI copy


def test_training_device_is_checked_before_any_work(tmp_path, capsys):
    import pytest

    from xray_restore.cli import main

    with pytest.raises(SystemExit, match="not a torch device"):
        main(["train-prior", "--data", str(tmp_path / "cache.npz"), "--device", "gpu0", "--out", str(tmp_path),
              "--network", '{"channels": [48, 96, 96]}'])
    assert not any(tmp_path.iterdir())  # nothing was written


def test_train_conditional_trains_the_network_of_the_bundles_train_json(small_cache, tmp_path):
    """Two real steps from the CLI (on a cut of the real cache: its validation pass is 8 images): the weights it
    writes load into the bundle's own ``network_def`` (the CLI builds the network, blur and noise range from
    train.json, it does not restate them)."""
    import torch
    from monai.bundle import ConfigParser

    from xray_restore.cli import main
    from xray_restore.networks import load_weights

    threads = torch.get_num_threads()
    try:
        assert main(["train-conditional", "--data", str(small_cache), "--out", str(tmp_path), "--steps", "2",
                     "--batch-size", "4", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)  # --threads set this process's torch threads: the later tests keep theirs
    parser = ConfigParser()
    parser.read_config("bundles/xray_conditional/configs/train.json")
    load_weights(parser.get_parsed_content("network_def"), tmp_path / "model.pt")


def test_fit_regressor_options_override_the_bundles_regressor_config(capsys):
    """``fit-regressor`` reads the bundle's train.json ``regressor_config`` (its home) and applies only the options
    given (the loss: ``l1``, what the shipped regressor's first 19,000 steps used, or ``sensitivity``); the width
    is the bundle's."""
    from xray_restore.blur_regressor import RegressorConfig
    from xray_restore.cli import _regressor_config, build_parser

    def config(*options: str) -> RegressorConfig:
        return _regressor_config(build_parser().parse_args(["fit-regressor", "--data", "cache.npz", *options]))

    assert config() == RegressorConfig()  # the dataclass defaults equal train.json (tests/test_settings.py)
    tuned = config("--sigma-loss", "l1", "--steps", "7")
    assert (tuned.sigma_loss, tuned.steps, tuned.width) == ("l1", 7, RegressorConfig().width)
    for gone in (("--width", "64"), ("--sigma-loss-offset", "0.5"), ("--sigma-loss", "l2")):
        with pytest.raises(SystemExit):
            config(*gone)
    capsys.readouterr()


def test_the_data_commands_take_data_or_the_environment_and_restoring_takes_neither(monkeypatch, capsys):
    """The commands that read the 64x64 cache take ``--data`` or ``$XRAY_RESTORE_DATA`` (there is no default path of a
    development checkout); ``run``, ``restore`` and ``batch`` have no ``--data``."""
    from xray_restore.cli import DATA_ENV, build_parser

    commands = ("train-prior", "train-conditional", "fit-spectrum", "fit-regressor", "evaluate")
    monkeypatch.delenv(DATA_ENV, raising=False)
    for command in commands:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command])
        assert "--data" in capsys.readouterr().err, command
        assert build_parser().parse_args([command, "--data", "given.npz"]).data == "given.npz"
    monkeypatch.setenv(DATA_ENV, "from_env.npz")
    for command in commands:
        assert build_parser().parse_args([command]).data == "from_env.npz"
        assert build_parser().parse_args([command, "--data", "given.npz"]).data == "given.npz"
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    for name in ("run", "restore", "batch", "train-source-prior"):
        assert "--data" not in {flag for a in sub.choices[name]._actions for flag in a.option_strings}, name


def test_every_option_of_every_command_has_help():
    import argparse

    from xray_restore.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [f"{name} {a.option_strings or a.dest}" for name, parser in sub.choices.items()
               for a in parser._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []
    for name in ("run", "restore", "batch"):
        assert "64x64 model scale" in sub.choices[name].format_help()


def test_a_corrupt_model_is_one_error_line_naming_the_file(tmp_path, in_process):
    """A bundle whose model.pt is not a weights file: one ``xray-restore: error: <file>: <reason>`` line, exit 1,
    no traceback (the InputError raised by load_weights reaches the CLI as it was raised)."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    bundle = tmp_path / "xray_ddrm"
    shutil.copytree(repo / "bundles" / "xray_ddrm", bundle, ignore=shutil.ignore_patterns("samples", "docs"))
    (bundle / "models" / "model.pt").write_bytes(b"not a torch file")
    done = in_process("restore", str(repo.parent / "shared" / "data" / "dicom" / "CR-MONO1-10-chest.dcm"), "-o",
                      str(tmp_path / "out"), "--bundle", str(bundle))
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"xray-restore: error: {bundle / 'models' / 'model.pt'}: not a loadable weights file "
                     "(UnpicklingError; expected a state dict saved with torch.save, loadable with weights_only=True)"]


def test_every_command_writes_where_o_output_says():
    """One output flag: every command that writes takes -o/--output."""
    from xray_restore.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public accessor
    for name, sub in commands.items():
        flags = {flag for action in sub._actions for flag in action.option_strings}  # noqa: SLF001
        if flags & {"-o", "--output", "--out"}:
            assert {"-o", "--output"} <= flags, name


def test_a_device_this_machine_lacks_is_one_clear_line(tmp_path, in_process):
    import torch

    wanted = "cuda" if not torch.cuda.is_available() else "cuda:99"
    result = in_process("restore", str(SHARED / "dicom" / "DX-NIH-chest-8bit.dcm"), "-o", str(tmp_path / "out"),
                        "--device", wanted)
    assert result.returncode != 0 and "--device" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_bad_option_value_is_one_clear_line_and_makes_no_folder(tmp_path, in_process):
    """Each refused value: exit 2 for argparse's own checks, 1 for the bundle's, the reason on stderr, no traceback,
    and no output folder left behind (the settings are checked before anything is written): ``restore`` and
    ``batch``."""
    source = str(SHARED / "cxr14_png" / "00000001_000.png")
    cases = [(("--samples", "0"), 2, "--samples: expected a whole number >= 1"),
             (("--set", "bogus=1"), 1, "has no id 'bogus'"),
             (("--sigma-y", "5"), 1, "sigma_y must be 'auto' or a noise std in [0, 1]"),
             (("--set", "num_steps=abc"), 1, "num_steps must be an integer >= 1, got 'abc'"),
             (("--blur-sigma", "-1"), 1, "blur_sigma must be")]
    for i, (options, code, says) in enumerate(cases):
        out = tmp_path / f"out{i}"
        result = in_process("restore", source, "-o", str(out), *options)
        assert result.returncode == code and says in result.stderr, (options, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, options
        assert not out.exists(), options
    out = tmp_path / "batch"
    result = in_process("batch", source, "-o", str(out), "--set", "bogus=1")
    assert result.returncode == 1 and "has no id 'bogus'" in result.stderr and not out.exists()


def test_batch_names_each_failed_input_and_its_reason(tmp_path, in_process):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "empty.dcm").write_bytes(b"")
    (inputs / "notes.dcm").write_text("not an image\n")
    result = in_process("-q", "batch", str(inputs), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    failed = sorted(line for line in result.stderr.splitlines() if line.startswith("xray-restore: failed:"))
    assert failed == [f"xray-restore: failed: {inputs / 'empty.dcm'}: load: empty file (0 bytes)",
                      f"xray-restore: failed: {inputs / 'notes.dcm'}: load: not a DICOM file (no SOP Class, "
                      "Modality or Rows element)"]


def test_restore_says_what_it_found_and_wrote_for_each_input(tmp_path, in_process):
    """A restored input's line gives its estimated blur and noise and the files written, relative to -o; a file
    pydicom complains about is named in that complaint (one line, not Python's warning format)."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    sharp = np.asarray(Image.open(SHARED / "cxr14_png" / "00000001_000.png").convert("L"), dtype=np.float64)
    blurred = tmp_path / "blurred.png"
    Image.fromarray(np.clip(np.round(gaussian_filter(sharp, 32.0, mode="reflect")), 0, 255).astype(np.uint8)).save(
        blurred)
    odd = SHARED / "dicom" / "CR-ModalitySequenceLUT.dcm"  # its StudyInstanceUID is not a valid UID
    result = in_process("restore", str(blurred), str(odd), "-o", str(tmp_path / "out"), "--set", "num_steps=2")
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(str(blurred))]
    assert line.startswith(f"{blurred}: blur ") and " px, noise 0.0" in line
    assert line.endswith("restored -> blurred_" + line.split("restored -> blurred_")[1])
    assert (tmp_path / "out" / line.split(" -> ")[1]).is_file()
    complaints = [line for line in result.stderr.splitlines() if "Invalid value for VR UI" in line]
    assert complaints and all(c.startswith(f"xray-restore: warning: {odd}: Invalid value") for c in complaints)


def test_main_in_process_leaves_the_callers_warning_display_as_it_was(tmp_path):
    """A notebook or a script that calls ``main()`` keeps its own warning display afterwards (the CLI's one-line
    format holds only while the command runs)."""
    import warnings

    from xray_restore.cli import main

    before = warnings.showwarning
    assert main(["restore", str(tmp_path / "missing.dcm"), "-o", str(tmp_path / "out")]) == 1
    assert warnings.showwarning is before


def test_a_fifo_fails_alone_by_name_and_never_hangs(tmp_path):
    """A FIFO named on the command line used to block the run for ever in open(), one in a folder was skipped unsaid:
    each now fails alone, named, as "not a regular file", and the good input of the run is restored."""
    import json
    import os

    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(tmp_path / "named.png")
    os.mkfifo(folder / "pipe.dcm")
    rows, cols = np.mgrid[0:64, 0:64]
    Image.fromarray(np.round((0.5 + 0.3 * np.sin(cols / 5.0) * np.cos(rows / 7.0)) * 255).astype(np.uint8)).save(
        folder / "good.png")
    cmd = [sys.executable, "-m", "xray_restore", "restore", str(tmp_path / "named.png"), str(folder), "-o",
           str(tmp_path / "out"), "--samples", "1", "--blur-sigma", "2", "--sigma-y", "0.01", "--set", "num_steps=2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)  # a blocked open() fails here
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    failed = sorted(line for line in result.stderr.splitlines() if line.startswith("xray-restore: load failed:"))
    assert failed == [f"xray-restore: load failed: {folder / 'pipe.dcm'}: not a regular file (a FIFO); only regular "
                      "files are read",
                      f"xray-restore: load failed: {tmp_path / 'named.png'}: not a regular file (a FIFO); only regular "
                      "files are read"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["n_done"], summary["n_failed"]) == (1, 2)
