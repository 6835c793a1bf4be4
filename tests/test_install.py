"""``pip install .`` builds a wheel that brings the common kernels compiled
(``build_backend.py``): the installed package's first fit loads them, compiles nothing.

The fast tests check the wheel surgery on a synthetic wheel; the slow ones build the real
wheel with pip (its build environment installs fastbp's dependencies, then compiles the
kernels: about a minute on 2 cores) and use it from a directory of its own."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from subproc import ROOT, TESTS, run_python

sys.path.insert(0, str(ROOT))
import build_backend  # noqa: E402  (the checkout's root holds it, not a package)

sys.path.remove(str(ROOT))


def record_errors(wheel):
    """RECORD's lines that do not match the wheel's files (PEP 427), and its files that
    RECORD does not list."""
    errors = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        listed = set()
        for line in zf.read(record).decode().splitlines():
            path, digest, size = line.rsplit(",", 2)
            listed.add(path)
            if path == record:
                if digest or size:
                    errors.append("RECORD lists a hash of itself")
                continue
            data = zf.read(path)
            want = "sha256=" + base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if digest != want or int(size) != len(data):
                errors.append(path)
    return errors + sorted(names - listed)


def make_wheel(path):
    files = {"pkg/__init__.py": b"x = 1\n", "pkg-1.0.dist-info/METADATA": b"Name: pkg\n"}
    with zipfile.ZipFile(path, "w") as zf:
        lines = []
        for name, data in files.items():
            zf.writestr(name, data)
            lines.append(build_backend._record_line(name, data))
        lines.append("pkg-1.0.dist-info/RECORD,,")
        zf.writestr("pkg-1.0.dist-info/RECORD", "\n".join(lines) + "\n")


def test_the_rewritten_wheel_lists_what_it_holds(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    make_wheel(wheel)
    assert record_errors(wheel) == []
    root = tmp_path / "root"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    added = ["pkg/__pycache__/k.f-1.py311.nbi", "pkg/__pycache__/k.f-1.py311.1.nbc"]
    for i, name in enumerate(added):
        (root / name).write_bytes(bytes([i]) * (100 + i))
    build_backend._rewrite(str(wheel), str(root), added)
    assert record_errors(wheel) == []
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read(added[1]) == bytes([1]) * 101
        assert zf.read("pkg/__init__.py") == b"x = 1\n"
        assert len(zf.namelist()) == 5


def test_record_errors_sees_a_changed_file(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    make_wheel(wheel)
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("pkg/extra.py", b"y = 2\n")
    assert record_errors(wheel) == ["pkg/extra.py"]


@pytest.mark.parametrize("env, settings, enabled", [
    ({}, None, True),
    ({"FASTBP_PRECOMPILE": "0"}, None, False),
    ({"FASTBP_PRECOMPILE": "false"}, None, False),
    ({}, {"precompile": "false"}, False),
    ({}, {"precompile": "1"}, True),
])
def test_the_compile_can_be_turned_off(monkeypatch, env, settings, enabled):
    monkeypatch.delenv("FASTBP_PRECOMPILE", raising=False)
    # (setuptools' own hooks run egg_info in the working directory: not here)
    monkeypatch.setattr(build_backend._setuptools, "get_requires_for_build_wheel",
                        lambda settings=None: ["setuptools"])
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert build_backend._enabled(settings) is enabled
    deps = build_backend.get_requires_for_build_wheel(settings)
    assert any(d.startswith("numba") for d in deps) is enabled
    # an editable install's build is setuptools' own
    assert build_backend.get_requires_for_build_editable is (
        build_backend._setuptools.get_requires_for_build_editable)


def test_the_build_needs_fastbps_dependencies():
    """The build environment gets the dependencies of pyproject.toml, all of them."""
    import tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    assert build_backend._dependencies() == deps


def test_a_failing_compile_leaves_the_plain_wheel(tmp_path, monkeypatch, capsys):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    make_wheel(wheel)
    before = wheel.read_bytes()

    def fails(*args, **kwargs):
        raise RuntimeError("no numba here")

    monkeypatch.setattr(build_backend._setuptools, "build_wheel",
                        lambda *a, **k: wheel.name)
    monkeypatch.setattr(build_backend, "_warmup", fails)
    monkeypatch.delenv("FASTBP_PRECOMPILE", raising=False)
    assert build_backend.build_wheel(str(tmp_path)) == wheel.name
    assert wheel.read_bytes() == before
    assert "kernels not compiled into the wheel" in capsys.readouterr().err


# ---- the real wheel, built by pip -----------------------------------------------------

FIRST_FIT = """
import json, sys, warnings
from numba.core import event
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from fastbp.__main__ import Compiles

compiles = Compiles()
with event.install_listener("numba:compile", compiles):
    import fastbp
    from fastbp import _config
    X, y = load_iris(return_X_y=True)
    out = {}
    for dtype in ("float64", "float32"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = fastbp.MLPClassifier(random_state=0).fit(X.astype(dtype), y)
        out[dtype] = model.predict_proba(X.astype(dtype)).tolist()
print(json.dumps({"compiled": compiles.names, "fastbp": fastbp.__file__, "proba": out,
                  "loaded": _config.LOADED[0], "cache_dirs": sorted(_config.CACHE_DIRS)}))
"""


def build(tmp_path, **env):
    dist = tmp_path / "dist"
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    environ.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(ROOT)],
        env=environ, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(dist.glob("fastbp-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def cache_files(wheel):
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if n.startswith("fastbp/__pycache__/")]


@pytest.mark.slow
def test_the_installed_wheel_fits_without_compiling(tmp_path):
    """pip's wheel holds the kernels' cache, a valid RECORD, and once installed (into a
    directory of its own, with new modification times) the first fit and prediction in
    each dtype compile nothing; the results are this checkout's."""
    wheel = build(tmp_path)
    files = cache_files(wheel)
    assert any(n.endswith(".nbc") for n in files) and any(n.endswith(".nbi") for n in files)
    assert "fastbp/__pycache__/fastbp-sources.sha256" in files
    assert not any(n.endswith(".pyc") for n in files)
    assert record_errors(wheel) == []
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=600)
    out = json.loads(run_python(
        FIRST_FIT, cwd=tmp_path, env=dict(PYTHONPATH=os.pathsep.join([str(site), str(TESTS)]),
                                          NUMBA_CACHE_DIR="", FASTBP_DISABLE_CACHE="0")))
    assert out["fastbp"] == str(site / "fastbp" / "__init__.py")
    assert out["cache_dirs"] == [str(site / "fastbp" / "__pycache__")]
    # (the epoch and the prediction, in each dtype)
    assert out["compiled"] == [] and out["loaded"] >= 4, out
    here = json.loads(run_python(FIRST_FIT, env=dict(FASTBP_DISABLE_CACHE="0")))
    for dtype in ("float64", "float32"):
        np.testing.assert_array_equal(out["proba"][dtype], here["proba"][dtype])


@pytest.mark.slow
def test_the_plain_wheel_when_asked(tmp_path):
    wheel = build(tmp_path, FASTBP_PRECOMPILE="0")
    assert cache_files(wheel) == []
    assert record_errors(wheel) == []
