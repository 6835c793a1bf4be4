"""fastbp's build backend: setuptools', and a wheel that brings its kernels compiled.

A new environment's first fit used to compile its kernels: 10-25 s per dtype on a
2-core machine (LLVM, most of it). ``build_wheel`` (what ``pip install .`` runs) builds
setuptools' wheel, then compiles the kernels of the common fits into it: the wheel's
``fastbp`` is imported in a fresh process, ``python -m fastbp warmup --common`` runs
(dense X, one thread; every solver, predictions, early stopping; one process per dtype,
in parallel), and the Numba cache it writes in ``fastbp/__pycache__`` is added to the
wheel. The installed package then loads those kernels instead of compiling them.

- Numba is the compiler: no C compiler is used or needed. The build environment gets
  fastbp's own dependencies (``get_requires_for_build_wheel``) to run it.
- Where anything fails (no Numba for this Python, a compile error, a timeout), the wheel
  is setuptools' own, as before: the kernels compile at first use. Never fatal.
- The cache is keyed on the CPU it was built on (Numba's rule) and on the hash of
  fastbp's sources and Numba's version (``fastbp/_config.py``): installed on another CPU
  or beside another Numba, it is ignored and the kernels compile at first use.
- ``FASTBP_PRECOMPILE=0`` in the environment, or ``-C precompile=false`` (pip's
  ``--config-settings``), builds the plain wheel, without the compile and without the
  dependencies in the build environment.
- Editable installs (``pip install -e``) and sdists are setuptools' own: an editable
  install compiles as the sources change, into the checkout's ``__pycache__``.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every hook, as setuptools has it)

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = ("float64", "float32")
TIMEOUT_S = 1800
CACHE_FILES = (".nbi", ".nbc", "fastbp-sources.sha256")  # (_config.STAMP)
# set to what the kernels' cache directory would be told otherwise, or to no cache
UNSET = ("NUMBA_CACHE_DIR", "NUMBA_CACHE_LOCATOR_CLASSES", "NUMBA_DISABLE_JIT",
         "FASTBP_DISABLE_CACHE", "PYTHONDONTWRITEBYTECODE")


def _say(line):
    print("fastbp build: " + line, file=sys.stderr, flush=True)


def _enabled(config_settings):
    if os.environ.get("FASTBP_PRECOMPILE", "1").strip().lower() in ("0", "false", "no"):
        return False
    setting = str((config_settings or {}).get("precompile", "true")).strip().lower()
    return setting not in ("0", "false", "no")


def _dependencies():
    """fastbp's dependencies, from pyproject.toml ([] where tomllib is missing: 3.10)."""
    try:
        import tomllib
    except ImportError:
        return []
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def get_requires_for_build_wheel(config_settings=None):
    requires = _setuptools.get_requires_for_build_wheel(config_settings)
    return requires + (_dependencies() if _enabled(config_settings) else [])


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    if _enabled(config_settings):
        try:
            _add_kernels(os.path.join(wheel_directory, name))
        except Exception as e:  # (the plain wheel is still a working one)
            _say("kernels not compiled into the wheel (they compile at first use): "
                 "%s: %s" % (type(e).__name__, e))
    return name


def _warmup(root, args):
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.Popen([sys.executable, "-m", "fastbp", "warmup", "--common"] + args,
                            cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, what):
    out, _ = proc.communicate(timeout=TIMEOUT_S)
    for line in out.splitlines():
        _say(line)
    if proc.returncode != 0:
        raise RuntimeError("%s: warmup exited with %d" % (what, proc.returncode))


def _add_kernels(wheel):
    root = tempfile.mkdtemp(prefix="fastbp-build-")
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(root)
        # one process per dtype, in parallel; both write each kernel's one index file, so
        # an entry can be lost to the other's write: a last pass, in one process, loads
        # what is there and compiles what is missing
        procs = [(_warmup(root, ["--dtype", d]), d) for d in DTYPES]
        try:
            for proc, dtype in procs:
                _finish(proc, dtype)
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
        _finish(_warmup(root, []), "check")
        cache = os.path.join(root, "fastbp", "__pycache__")
        added = sorted("fastbp/__pycache__/" + n for n in os.listdir(cache)
                       if n.endswith(CACHE_FILES))
        if not added:
            raise RuntimeError("no cache files were written")
        _rewrite(wheel, root, added)
        _say("%d cache files (%.1f MB) added to %s" % (
            len(added), sum(os.path.getsize(os.path.join(root, a)) for a in added) / 1e6,
            os.path.basename(wheel)))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "%s,sha256=%s,%d" % (path, digest.decode(), len(data))


def _rewrite(wheel, root, added):
    """The wheel with the files ``added`` (paths in it, read from ``root``) and its RECORD
    listing them (PEP 427)."""
    tmp = wheel + ".tmp"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        record = next(n for n in src.namelist() if n.endswith(".dist-info/RECORD"))
        lines = src.read(record).decode().splitlines()
        lines = [ln for ln in lines if ln and not ln.startswith(record + ",")]
        for info in src.infolist():
            if info.filename != record:
                dst.writestr(info, src.read(info))
        for path in added:
            with open(os.path.join(root, path), "rb") as f:
                data = f.read()
            dst.writestr(path, data)
            lines.append(_record_line(path, data))
        lines.append(record + ",,")
        dst.writestr(record, "\n".join(lines) + "\n")
    os.replace(tmp, wheel)
