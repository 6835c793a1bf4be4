"""A damaged Numba cache, or none that can be written, is never fatal (``_config.Cache``).

Numba 0.68 raises on a truncated or altered cache file (``UnpicklingError``, ``EOFError``;
altered machine code can crash the process) and raises at import when no cache directory
can be written ("no locator available"). The fast tests run a toy kernel, defined in a
module of fastbp's package namespace (so it gets fastbp's cache) in ``tmp_path``; the
end-to-end ones (slow: they compile a fit's kernels from nothing, 10-15 s each) run a fit
in a fresh process."""

import glob
import importlib.util
import json
import os
import pickle
import shutil
import sys
import warnings
from itertools import count
from pathlib import Path

import numpy as np
import pytest
import numba
from numba.core import caching, config

import fastbp
from fastbp import _config
from subproc import ROOT, TESTS, run_python

TOY = """
from numba import njit
from fastbp._config import JIT

@njit(**JIT)
def toy(x):
    return 2.0 * x + 1.0
"""

_names = count()


def load_toy(path):
    """A fresh import of ``path`` as a module of the fastbp package: a new dispatcher
    (nothing compiled in memory yet) over the same source file and cache files."""
    name = "fastbp._toy_cache_test_%d" % next(_names)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (where a cached kernel's globals are looked up)
    spec.loader.exec_module(module)
    return module.toy


def cache_files(dispatcher):
    return sorted(glob.glob(os.path.join(dispatcher._cache.cache_path, "*.nb[ic]")))


@pytest.fixture
def toy_path(tmp_path, monkeypatch):
    """The toy's source, cached next to it (``tmp_path/__pycache__``)."""
    monkeypatch.setattr(config, "CACHE_DIR", "")  # (CI runs tests under NUMBA_CACHE_DIR)
    monkeypatch.setattr(_config, "_warned", set())  # each test sees its first warning
    monkeypatch.setattr(_config, "_fresh", {})
    path = tmp_path / "toy.py"
    path.write_text(TOY)
    return path


def run_toy(path):
    """Call a fresh toy once; (result, loaded from the cache?, warnings)."""
    toy = load_toy(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = toy(3.0)
    hits = sum(toy.stats.cache_hits.values())
    return result, hits == 1, [str(w.message) for w in caught]


def truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def empty(path):
    os.truncate(path, 0)


def flip(path):  # a run of flipped bytes a fifth of the way in (machine code, in .nbc)
    raw = bytearray(Path(path).read_bytes())
    at = len(raw) // 5
    raw[at:at + 16] = bytes(b ^ 0xFF for b in raw[at:at + 16])
    Path(path).write_bytes(bytes(raw))


def garbage(path):
    Path(path).write_bytes(b"\x0bnot a cache file" * 10)


@pytest.mark.parametrize("kind", [".nbi", ".nbc", "both"])
@pytest.mark.parametrize("damage", [truncate, empty, flip, garbage])
def test_a_damaged_file_is_a_miss_and_is_rewritten(toy_path, damage, kind):
    assert run_toy(toy_path) == (7.0, False, [])  # compiled and cached
    assert run_toy(toy_path) == (7.0, True, [])  # loaded
    files = cache_files(load_toy(toy_path))
    assert [Path(f).suffix for f in files] == [".nbc", ".nbi"]
    for f in files:
        if kind in ("both", Path(f).suffix):
            damage(f)
    result, hit, caught = run_toy(toy_path)
    assert (result, hit) == (7.0, False)
    assert len(caught) == 1 and "damaged Numba cache file" in caught[0], caught
    assert run_toy(toy_path) == (7.0, True, [])  # rewritten by the recompile


def test_the_seal_is_checked_before_unpickling(toy_path):
    """Numba's own reader still reads a sealed file (pickle ignores what follows its
    end); fastbp's reads nothing that fails the check."""
    run_toy(toy_path)
    index = [f for f in cache_files(load_toy(toy_path)) if f.endswith(".nbi")][0]
    raw = Path(index).read_bytes()
    with open(index, "rb") as f:
        assert pickle.load(f) == numba.__version__
        stamp, overloads = pickle.loads(f.read())
    assert len(overloads) == 1
    assert _config._unseal(_config._seal(b"abc")) == b"abc"
    for bad in (raw[:-1], raw[:-33] + bytes(33), b"", raw[:len(raw) // 2]):
        with pytest.raises(ValueError, match="checksum"):
            _config._unseal(bad)


def test_another_numba_versions_index_is_a_silent_miss(toy_path):
    run_toy(toy_path)
    index = [f for f in cache_files(load_toy(toy_path)) if f.endswith(".nbi")][0]
    with open(index, "rb") as f:
        pickle.load(f)
        rest = f.read()
    with open(index, "wb") as f:
        pickle.dump("0.1.0", f, protocol=-1)
        f.write(rest)
    assert run_toy(toy_path) == (7.0, False, [])
    assert run_toy(toy_path) == (7.0, True, [])


def test_a_failing_save_is_skipped(toy_path):
    """The cache directory replaced by a file after the kernel was decorated (as a full
    disk or a directory gone read-only would fail it): the call still runs."""
    toy = load_toy(toy_path)
    shutil.rmtree(toy._cache.cache_path, ignore_errors=True)
    Path(toy._cache.cache_path).write_text("in the way")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert toy(3.0) == 7.0
    assert [w for w in caught if "could not be written" in str(w.message)]


DOT = """
import numpy as np
from numba import njit
from fastbp._config import JIT

@njit(**JIT)
def toy(a, b):
    return np.dot(a, b) + 1.0  # a new array (Numba's runtime) and BLAS
"""

LOAD = """
import json, sys
import numpy as np
from test_cache_faults import load_toy
toy = load_toy(sys.argv[1])
a, b = np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(3, 2)
out = {"f64": toy(a, b).tolist(), "compiling": "numba.np.arraymath" in sys.modules}
if sys.argv[2] == "both":  # float32: not cached in the first process
    out["f32"] = toy(a.astype(np.float32), b.astype(np.float32)).tolist()
out["hits"] = sum(toy.stats.cache_hits.values())
print(json.dumps(out))
"""


def test_a_cached_kernel_loads_without_numbas_compiler_registries(tmp_path):
    """Numba refreshes its compiler's registries (about 60 modules, 0.2-0.3 s of a
    process's first fit) before it loads a cached kernel; ``Cache.load_overload``
    initialises only the runtime, which is all the loaded code calls. A fresh process
    then runs a cached kernel that allocates and calls BLAS, and compiles the next
    signature as before."""
    path = tmp_path / "toy.py"
    path.write_text(DOT)
    env = dict(NUMBA_CACHE_DIR="", FASTBP_DISABLE_CACHE="0")
    want = (np.arange(6.0).reshape(2, 3) @ np.arange(6.0).reshape(3, 2) + 1.0).tolist()
    first = json.loads(run_python(LOAD, path, "f64", env=env))
    assert first == {"f64": want, "compiling": True, "hits": 0}
    second = json.loads(run_python(LOAD, path, "both", env=env))
    assert second == {"f64": want, "compiling": False, "f32": want, "hits": 1}
    third = json.loads(run_python(LOAD, path, "both", env=env))
    assert third == {"f64": want, "compiling": False, "f32": want, "hits": 2}


def block_cache_dirs(tmp_path, monkeypatch, home_writable):
    """Every directory Numba could cache the toy in made unusable by a file in the way
    (root ignores permissions, so read-only modes would not do): ``__pycache__`` beside
    it, and NUMBA_CACHE_DIR; the user-wide one (XDG_CACHE_HOME) only if not
    ``home_writable``."""
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    (tmp_path / "__pycache__").write_text("")
    monkeypatch.setattr(config, "CACHE_DIR", str(in_the_way / "numba"))
    home = tmp_path / "home" if home_writable else in_the_way
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return home


def test_no_writable_cache_dir_compiles_in_memory(toy_path, tmp_path, monkeypatch):
    """Numba raises "no locator available" when it decorates such a function (so
    ``import fastbp`` failed); fastbp's compile in memory instead."""
    block_cache_dirs(tmp_path, monkeypatch, home_writable=False)
    monkeypatch.setattr(_config, "IN_MEMORY", [])
    toy = load_toy(toy_path)
    assert isinstance(toy._cache, _config.Cache) and not toy._cache.writable
    assert _config.IN_MEMORY == ["toy"]
    assert toy(3.0) == 7.0
    assert sorted(os.listdir(tmp_path)) == ["__pycache__", "a-file", "toy.py"]


def test_numba_alone_fails_there(toy_path, tmp_path, monkeypatch):
    """What fastbp works around: a function outside fastbp, same place, Numba's cache."""
    block_cache_dirs(tmp_path, monkeypatch, home_writable=False)
    spec = importlib.util.spec_from_file_location("toy_outside_fastbp", toy_path)
    with pytest.raises(RuntimeError, match="no locator available"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_an_unwritable_package_dir_caches_in_the_user_wide_dir(toy_path, tmp_path,
                                                                 monkeypatch):
    """Numba's own fallback (``UserWideCacheLocator``), with fastbp's cache over it."""
    home = block_cache_dirs(tmp_path, monkeypatch, home_writable=True)
    assert run_toy(toy_path) == (7.0, False, [])
    toy = load_toy(toy_path)
    assert isinstance(toy._cache, _config.Cache)
    assert toy._cache.cache_path.startswith(str(home / ".cache" / "numba"))
    assert toy._cache.cache_path in _config.CACHE_DIRS
    assert run_toy(toy_path) == (7.0, True, [])


def test_fastbps_kernels_get_fastbps_cache():
    """(Not Numba's, nor, by a failure hidden by the fallback, none.)"""
    from fastbp import _kernels

    if _config.JIT["cache"]:
        cache = _kernels.train_epoch._cache
        assert isinstance(cache, _config.Cache)
        assert (cache.cache_path in _config.CACHE_DIRS) is cache.writable


@pytest.mark.parametrize("home_writable", [True, False], ids=["home", "no-home"])
def test_a_cache_numba_cannot_write_is_read(toy_path, tmp_path, monkeypatch,
                                            home_writable):
    """The toy cached beside it and stamped (as ``python -m fastbp warmup`` leaves an
    install), then that directory made one Numba cannot write (as Numba finds out:
    its locator's ``ensure_cache_path`` fails): Numba would cache in the user-wide
    directory, or nowhere, and ignore it; fastbp reads it and writes nothing."""
    assert run_toy(toy_path) == (7.0, False, [])
    pycache = tmp_path / "__pycache__"
    (pycache / _config.STAMP).write_text(_config.sources_digest())
    before = sorted(os.listdir(pycache))

    def unwritable(self):
        raise PermissionError(13, "Permission denied", self.get_cache_path())

    monkeypatch.setattr(caching.InTreeCacheLocator, "ensure_cache_path", unwritable)
    home = tmp_path / "home" if home_writable else tmp_path / "toy.py"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    toy = load_toy(toy_path)
    assert toy._cache.writable is home_writable
    assert run_toy(toy_path) == (7.0, True, [])
    assert sorted(os.listdir(pycache)) == before
    if home_writable:
        assert glob.glob(str(home / ".cache" / "numba" / "*" / "*.nb[ic]")) == []


def test_a_stale_read_only_cache_is_not_read(toy_path, tmp_path, monkeypatch):
    """Its stamp not these sources' (``drop_stale_cache`` could not drop it there)."""
    assert run_toy(toy_path) == (7.0, False, [])
    (tmp_path / "__pycache__" / _config.STAMP).write_text("another fastbp")

    def unwritable(self):
        raise PermissionError(13, "Permission denied", self.get_cache_path())

    monkeypatch.setattr(caching.InTreeCacheLocator, "ensure_cache_path", unwritable)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "toy.py"))
    assert run_toy(toy_path) == (7.0, False, [])


# ---- end to end: a fit in a fresh process ---------------------------------------------

FIT = """
import json, warnings
import fastbp
from fastbp import _config
from test_cache_faults import tiny_fit, tiny_X
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = tiny_fit()
print(json.dumps({
    "proba": model.predict_proba(tiny_X()).tolist(),
    "fastbp": fastbp.__file__,
    "cache_dirs": sorted(_config.CACHE_DIRS),
    "in_memory": len(_config.IN_MEMORY),
    "warnings": [str(w.message) for w in caught if "Numba" in str(w.message)],
}))
"""


def tiny_X():
    return np.random.default_rng(0).standard_normal((60, 6))


def tiny_fit():
    """One solver, one dtype (adam, float64): a short compile."""
    from sklearn.exceptions import ConvergenceWarning

    X = tiny_X()
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fastbp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5,
                                    random_state=0).fit(X, y)


def fit_in_a_child(cwd=ROOT, **env):
    out = json.loads(run_python(FIT, env=dict(FASTBP_DISABLE_CACHE="0", **env), cwd=cwd))
    np.testing.assert_allclose(out["proba"], tiny_fit().predict_proba(tiny_X()),
                               rtol=1e-12, atol=1e-15)
    return out


@pytest.mark.slow
def test_a_fresh_process_fits_over_a_truncated_cache(tmp_path):
    """Every cache file cut to half its size (as the issue has it: Numba 0.68 then
    raised ``UnpicklingError: pickle data was truncated`` in every later process): the
    next process fits and predicts as this one does, and rewrites the cache.
    Compiles the fit's kernels twice (about 25 s)."""
    cache = tmp_path / "numba-cache"
    first = fit_in_a_child(NUMBA_CACHE_DIR=str(cache))
    assert first["warnings"] == [] and first["in_memory"] == 0
    assert [Path(d).parent for d in first["cache_dirs"]] == [cache]
    files = glob.glob(str(cache / "*" / "*.nb[ic]"))
    assert len(files) > 10
    for f in files:
        truncate(f)
    second = fit_in_a_child(NUMBA_CACHE_DIR=str(cache))
    assert len(second["warnings"]) == 1, second["warnings"]
    assert "damaged Numba cache file" in second["warnings"][0]
    assert fit_in_a_child(NUMBA_CACHE_DIR=str(cache))["warnings"] == []  # healed


@pytest.mark.slow
def test_a_read_only_install_fits_in_memory(tmp_path):
    """A copy of fastbp where no cache directory can be written (its ``__pycache__``,
    NUMBA_CACHE_DIR and the user-wide one each blocked by a file in the way: root, as
    in CI, ignores read-only modes): ``import fastbp`` raised "no locator available";
    now it fits and predicts in memory and writes nothing. Compiles a fit (about 12 s)."""
    package = tmp_path / "fastbp"
    shutil.copytree(Path(fastbp.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__pycache__").write_text("")
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    before = sorted(p for p in tmp_path.rglob("*"))
    out = fit_in_a_child(cwd=tmp_path,
                         PYTHONPATH=os.pathsep.join([str(tmp_path), str(TESTS)]),
                         NUMBA_CACHE_DIR=str(in_the_way / "numba"),
                         XDG_CACHE_HOME=str(in_the_way / "cache"),
                         HOME=str(in_the_way), PYTHONDONTWRITEBYTECODE="1")
    assert out["fastbp"] == str(package / "__init__.py")
    assert out["cache_dirs"] == [] and out["in_memory"] > 10
    assert sorted(p for p in tmp_path.rglob("*")) == before
