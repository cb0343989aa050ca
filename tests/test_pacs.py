"""Batch against a real PACS on loopback: Orthanc (Debian package) with its DICOMweb plugin.

The batches are the ``batch`` command, ``main(argv)`` run in this process (:func:`batch`), at the fewest DDRM steps
(``num_steps=2``: what is checked here is the traffic with the PACS and the manifest, not the pixels); the one run
killed with SIGKILL is a real ``python -m xray_restore`` process.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from xray_restore.pacs import DicomWebNode

DICOM_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "xray_ddrm"
ORTHANC = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
CHESTS = ["DX-NIH-chest-8bit.dcm", "CR-MONO1-10-chest.dcm"]
MAMMOGRAM = "MG_Explicit_Little.dcm"  # the anatomy gate hands it back: skipped, never stored back
PUSHED = [*CHESTS, MAMMOGRAM]


def batch_args(source: str, out: Path, *extra: str) -> list[str]:
    return ["batch", source, "-o", str(out), "--bundle", str(BUNDLE), "--store-back", "--blur-sigma", "2", "--set",
            "num_steps=2", *extra]


@pytest.fixture
def batch(capsys):
    """``batch(args) -> (exit status, the JSON report the command prints last, stderr)``: ``main(args)`` here."""
    from xray_restore.cli import main

    def call(args: list[str]) -> tuple[int, dict, str]:
        capsys.readouterr()
        code = main(args)
        out, err = capsys.readouterr()
        assert out.strip(), err[-3000:]
        return code, json.loads(out.strip().splitlines()[-1]), err

    return call


def all_instances(node: DicomWebNode) -> list:
    from xray_restore.pacs import InstanceRef

    items = node.client.search_for_instances()
    return [InstanceRef(i["0020000D"]["Value"][0], i["0020000E"]["Value"][0], i["00080018"]["Value"][0]) for i in items]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc_server(tmp_path_factory):
    """Orthanc on loopback: ``{"web": DICOMweb URL, "dimse": dicom://AET@host:port}``."""
    if not (Path(ORTHANC).is_file() and Path(PLUGIN).is_file()):
        pytest.fail("Orthanc and its DICOMweb plugin are required (Debian: orthanc orthanc-dicomweb; .ci/run installs)")
    root = tmp_path_factory.mktemp("orthanc")
    http, dicom = free_port(), free_port()
    config = {"Name": "XRAYTEST", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": "XRAYTEST", "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "UnknownSopClassAccepted": True,
              "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
              "DicomAlwaysAllowGet": True, "DicomCheckModalityHost": False,
              "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (root / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen([ORTHANC, str(root / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/system", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.terminate()
        pytest.fail("Orthanc did not start")
    yield {"web": f"{base}/dicom-web", "dimse": f"dicom://XRAYTEST@127.0.0.1:{dicom}"}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def orthanc(orthanc_server):
    """Orthanc's DICOMweb URL."""
    return orthanc_server["web"]


def test_batch_against_orthanc_stores_derived_series(orthanc, tmp_path, per_input, batch):
    node = DicomWebNode(orthanc)
    staged = []
    for name in PUSHED:
        ds = pydicom.dcmread(DICOM_DIR / name, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        path = tmp_path / name
        ds.save_as(path, enforce_file_format=True)
        staged.append((path, ds))
    assert node.store([p for p, _ in staged]) == len(PUSHED)
    sources = {str(ds.SOPInstanceUID): ds for _, ds in staged}

    out = tmp_path / "out"
    code, report, err = batch(batch_args(orthanc, out))
    assert code == 0, err[-3000:]
    assert report["counts"]["stored"] == len(CHESTS) and report["stored"] == len(CHESTS) * per_input
    assert report["counts"]["skipped"] == 1  # the mammogram, seen for what it is
    from xray_restore.batch import Manifest

    book = Manifest(out / "manifest.sqlite")
    (skipped,) = [r for r in book.rows() if r["state"] == "skipped"]
    book.close()
    assert "chest" in skipped["reason"] and not skipped["outputs"], skipped

    assert sorted(r.sop for r in node.search()) == sorted(sources)  # searches skip our own derived objects
    derived = [r for r in all_instances(node) if r.sop not in sources]
    assert len(derived) == len(CHESTS) * per_input
    for ref in derived:
        ds = node.client.retrieve_instance(ref.study, ref.series, ref.sop)
        source_uid = str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)
        assert source_uid in sources
        assert ds.StudyInstanceUID == sources[source_uid].StudyInstanceUID
        assert ds.SeriesInstanceUID != sources[source_uid].SeriesInstanceUID
        assert "DDRM" in ds.DerivationDescription

    # a second run finds everything done: nothing re-processed, nothing duplicated on the PACS
    code, second, _ = batch(batch_args(orthanc, out))
    assert code == 0
    assert second["processed"] == 0 and second["stored"] == 0  # nothing re-sent
    assert len([r for r in all_instances(node) if r.sop not in sources]) == len(CHESTS) * per_input


def test_search_filters(orthanc, tmp_path):
    node = DicomWebNode(orthanc)
    datasets = {}
    for name in PUSHED:
        ds = pydicom.dcmread(DICOM_DIR / name, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(tmp_path / name, enforce_file_format=True)
        datasets[name] = ds
    node.store([tmp_path / n for n in PUSHED])  # idempotent if already there
    dx = datasets["DX-NIH-chest-8bit.dcm"]
    by_study = node.search(study_uids=[str(dx.StudyInstanceUID)])
    assert {r.sop for r in by_study} == {str(dx.SOPInstanceUID)}
    assert {r.sop for r in node.search(modality="DX")} == {str(dx.SOPInstanceUID)}
    assert node.search(modality="NOSUCHMODALITY") == []
    dated = [d for d in datasets.values() if d.get("StudyDate")]
    if dated:
        day = str(dated[0].StudyDate)
        assert str(dated[0].SOPInstanceUID) in {r.sop for r in node.search(date_range=f"{day}-{day}")}
        assert node.search(date_range="18000101-18000102") == []


def test_an_instance_with_a_path_like_uid_fails_alone_and_store_back_sends_once(orthanc, tmp_path, per_input,
                                                                                 batch):
    """Orthanc accepts SOPInstanceUID '../../PWNED': it is recorded as failed (never a path), the others are
    restored and stored back once; a re-run processes and stores nothing."""
    from xray_restore.batch import Manifest

    node = DicomWebNode(orthanc)
    for name in PUSHED:
        ds = pydicom.dcmread(DICOM_DIR / name, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(tmp_path / name, enforce_file_format=True)
    evil = pydicom.dcmread(tmp_path / "CR-MONO1-10-chest.dcm")
    evil.SOPInstanceUID = "../../PWNED"
    evil.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    evil.save_as(tmp_path / "evil.dcm", enforce_file_format=True)
    assert node.store([tmp_path / n for n in [*PUSHED, "evil.dcm"]]) == len(PUSHED) + 1

    out = tmp_path / "work" / "out"
    held_before = {r.sop for r in all_instances(node)}
    code, report, err = batch(batch_args(orthanc, out))
    assert code == 1, err[-3000:]  # one input failed, and only that one
    assert report["counts"]["stored"] == len(CHESTS) and report["counts"]["failed"] == 1
    book = Manifest(out / "manifest.sqlite")
    (failed,) = [r for r in book.rows() if r["state"] == "failed"]
    derived = [str(pydicom.dcmread(o, stop_before_pixels=True).SOPInstanceUID)
               for r in book.rows() for o in r["outputs"]]
    book.close()
    assert len(derived) == len(CHESTS) * per_input and set(derived) <= {r.sop for r in all_instances(node)}
    # sent: only what the PACS did not hold (an earlier test may have stored the same derived objects)
    assert report["stored"] == len(set(derived) - held_before)
    assert "PWNED" in failed["key"] and "invalid SOPInstanceUID" in failed["reason"]
    assert not [p for p in tmp_path.rglob("*PWNED*")]  # the UID never became a path

    _, report, _ = batch(batch_args(orthanc, out))
    assert report["processed"] == 0 and report["stored"] == 0 and report["counts"]["stored"] == len(CHESTS)


def test_kill_during_the_store_then_resume(orthanc, tmp_path, kill_switch, per_input, batch):
    """kill -9 (a real process's) right after the PACS accepted a STOW-RS and before the manifest recorded it: the
    re-run stores what is missing, the PACS ends with exactly one set of derived objects per source and the manifest
    says ``stored``."""
    from pydicom.uid import generate_uid

    from xray_restore.batch import Manifest

    node = DicomWebNode(orthanc)
    study = generate_uid(entropy_srcs=[str(tmp_path), "study"])
    sources = []
    for i, name in enumerate(CHESTS):
        ds = pydicom.dcmread(DICOM_DIR / name, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(tmp_path), "series", str(i)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(tmp_path), str(i)])
        ds.save_as(tmp_path / name, enforce_file_format=True)
        sources.append(str(ds.SOPInstanceUID))
    assert node.store([tmp_path / n for n in CHESTS]) == len(sources)

    out = tmp_path / "work" / "out"
    args = batch_args(orthanc, out, "--studies", study)
    killed = subprocess.run([sys.executable, "-m", "xray_restore", *args], capture_output=True, text=True,
                            timeout=600, env=kill_switch("store", 1))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    book = Manifest(out / "manifest.sqlite")
    assert book.counts()["stored"] == 0 and book.counts()["done"] == len(sources)  # stored, but not recorded
    book.close()

    code, report, err = batch(args)
    assert code == 0, err[-3000:]
    assert report["processed"] == 0 and report["counts"]["stored"] == len(sources)
    assert report["stored"] == (len(sources) - 1) * per_input  # what the PACS already held was not sent again
    derived = [r for r in all_instances(node) if r.study == study and r.sop not in sources]
    assert len(derived) == len(sources) * per_input  # the objects stored before the kill were not duplicated
    referenced = sorted(str(node.client.retrieve_instance(r.study, r.series, r.sop)
                            .SourceImageSequence[0].ReferencedSOPInstanceUID) for r in derived)
    assert referenced == sorted(sources * per_input)


def test_batch_over_dimse_queries_retrieves_and_stores_back(orthanc_server, tmp_path, per_input, batch):
    """The same batch over Orthanc's DICOM port: C-FIND, C-GET, C-STORE of the derived series (pynetdicom); a
    re-run processes and stores nothing; our derived series are never taken as inputs."""
    from pydicom.uid import generate_uid

    from xray_restore.dimse import DimseNode

    web = DicomWebNode(orthanc_server["web"])
    study = generate_uid(entropy_srcs=[str(tmp_path), "dimse-study"])
    sources = []
    for i, name in enumerate(CHESTS):
        ds = pydicom.dcmread(DICOM_DIR / name, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(tmp_path), "dimse-series", str(i)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
            entropy_srcs=[str(tmp_path), "dimse", str(i)])
        ds.save_as(tmp_path / name, enforce_file_format=True)
        sources.append(str(ds.SOPInstanceUID))
    node = DimseNode(orthanc_server["dimse"])
    assert node.store([tmp_path / n for n in CHESTS]) == 2  # C-STORE in
    assert sorted(r.sop for r in node.search([study])) == sorted(sources)  # C-FIND

    out = tmp_path / "work"
    args = batch_args(orthanc_server["dimse"], out, "--studies", study)
    code, report, err = batch(args)
    assert code == 0, err[-3000:]
    assert report["counts"]["stored"] == 2 and report["stored"] == 2 * per_input
    derived = [r for r in all_instances(web) if r.study == study and r.sop not in sources]
    assert len(derived) == 2 * per_input
    referenced = sorted(str(web.client.retrieve_instance(r.study, r.series, r.sop)
                            .SourceImageSequence[0].ReferencedSOPInstanceUID) for r in derived)
    assert referenced == sorted(sources * per_input)
    assert sorted(r.sop for r in node.search([study])) == sorted(sources)  # derived series are not inputs

    code, second, err = batch(args)
    assert code == 0, err[-3000:]
    assert second["processed"] == 0 and second["stored"] == 0
