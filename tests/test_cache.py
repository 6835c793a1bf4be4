"""Numba's cache of fastbp's kernels is dropped when a fastbp source changes.

Numba 0.68 keys a cached function on its own file's content only, but the machine code it
caches includes what the function inlined from other files (``_kernels.train_epoch``
from ``_losses``, ``_activations`` and ``_vmath``). ``_config.drop_stale_cache`` keys the whole
cache directory on every such source."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastbp
from fastbp import _config, _kernels


class _Cache:
    def __init__(self, path):
        self._cache_path = str(path)


class _Dispatcher:
    def __init__(self, path):
        self._cache = _Cache(path)


def test_drop_stale_cache(tmp_path):
    source = tmp_path / "kernels.py"
    source.write_text("x = 1\n")
    cache = tmp_path / "cache"
    dispatcher = _Dispatcher(cache)
    # a new directory: created and stamped before Numba writes into it
    assert _config.drop_stale_cache(dispatcher, _config._digest([source]))
    assert (cache / _config.STAMP).is_file()
    for name in ("kernels.f-1.py311.nbi", "kernels.f-1.py311.1.nbc", "kernels.cpython-311.pyc"):
        (cache / name).write_bytes(b"cached")
    # the same sources: the cache is kept
    assert not _config.drop_stale_cache(dispatcher, _config._digest([source]))
    assert len(os.listdir(cache)) == 4
    # a source changed: Numba's files go, the rest stays
    source.write_text("x = 2\n")
    assert _config.drop_stale_cache(dispatcher, _config._digest([source]))
    assert sorted(os.listdir(cache)) == sorted([_config.STAMP, "kernels.cpython-311.pyc"])
    assert not _config.drop_stale_cache(dispatcher, _config._digest([source]))
    # no cache (FASTBP_DISABLE_CACHE=1: Numba's NullCache has no path): nothing to do
    assert not _config.drop_stale_cache(object(), _config._digest([source]))


def test_every_compiled_source_keys_the_cache():
    """The stamp covers each fastbp file that imports numba, and the directory is the one
    Numba caches the kernels in."""
    here = Path(fastbp.__file__).parent
    names = {Path(p).name for p in _config.sources()}
    assert {"_kernels.py", "_threads.py", "_vmath.py", "_blas.py", "_config.py",
            "_activations.py", "_losses.py", "_optim.py", "_sync.py"} <= names
    assert all("numba" in p.read_text() for p in here.glob("*.py") if p.name in names)
    cache_dir = Path(_kernels.train_epoch._cache._cache_path)
    if os.environ.get("FASTBP_DISABLE_CACHE", "0") != "1":
        assert (cache_dir / _config.STAMP).is_file()


CHILD = """
import sys, numpy as np
import fastbp
from fastbp import _threads
_threads.MODE = "always"  # train_epoch on two threads: it inlines _losses' code
X = np.random.default_rng(0).standard_normal((64, 20))
sw = np.ones(64)
sw[32:48] = 0.0
try:
    fastbp.MLPRegressor(hidden_layer_sizes=(16, 16), batch_size=16, shuffle=False,
                        max_iter=2, random_state=0).fit(X, X.sum(axis=1), sample_weight=sw)
except ZeroDivisionError as e:
    print(e)
"""


@pytest.mark.slow
def test_an_edited_kernel_reaches_the_kernels_that_inline_it(tmp_path):
    """A copy of fastbp trains (and caches), then only its _losses.py changes: the
    epoch, cached under _kernels.py's unchanged content, must run the new code.
    Compiles the two-thread path twice (about 30 s)."""
    package = tmp_path / "fastbp"
    shutil.copytree(Path(fastbp.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), FASTBP_DISABLE_CACHE="0")
    env.pop("NUMBA_CACHE_DIR", None)

    def run():
        out = subprocess.run([sys.executable, "-c", CHILD], cwd=str(tmp_path), env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run() == "Weights sum to zero, can't be normalized"
    kernels = package / "_losses.py"
    kernels.write_text(kernels.read_text().replace("Weights sum to zero", "Weights add to zero"))
    assert run() == "Weights add to zero, can't be normalized"


def test_a_damaged_stamp_drops_the_cache(tmp_path):
    """A stamp overwritten with bytes that are not text (it raised UnicodeDecodeError at
    ``import fastbp``): a mismatch, so the cache is dropped and the stamp rewritten."""
    source = tmp_path / "kernels.py"
    source.write_text("x = 1\n")
    (tmp_path / _config.STAMP).write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "kernels.f-1.py311.nbi").write_bytes(b"cached")
    assert _config.drop_stale_cache(_Dispatcher(tmp_path), _config._digest([source]))
    assert sorted(os.listdir(tmp_path)) == sorted([_config.STAMP, "kernels.py"])
    assert not _config.drop_stale_cache(_Dispatcher(tmp_path), _config._digest([source]))
