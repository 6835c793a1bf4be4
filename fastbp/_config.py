"""One place for Numba options: every kernel in fastbp is compiled with ``JIT``.

- ``cache=True``: compiled machine code is written next to the module (``__pycache__``)
  and reused by later processes, so a grid search in worker processes loads, not compiles.
- ``nogil=True``: kernels release the GIL, so threads train or predict in parallel.
- ``fastmath``: a flag set, never ``True``. ``True`` would add ``nnan``/``ninf`` (NaN and
  inf checks folded away: a diverging fit would go silent) and ``reassoc``/``contract``
  (sums and products reordered: results would no longer match scikit-learn's to 1e-9 and
  could depend on the build). Every flag that is safe for both promises is kept.
- ``boundscheck``: left to the ``NUMBA_BOUNDSCHECK`` environment variable, which CI sets
  to 1 for one run of the kernel tests.

Set ``FASTBP_DISABLE_CACHE=1`` to compile in memory only.

Numba's cache is never fatal (``Cache`` below, for fastbp's functions only): Numba 0.68
raises when a cache file is truncated or altered (``UnpicklingError``, ``EOFError``;
altered machine code can crash the process outright), and raises at import when no
cache directory can be written. Here each file carries a SHA-256 of its content, and a
file that fails it, or any other load error, is a cache miss: the kernel is recompiled
and the file rewritten. Where no directory can be written (a read-only install with no
writable home directory), fastbp compiles in memory. Numba also ignores a cache in a
directory it cannot write (``fastbp/__pycache__`` of a read-only install, built there
by ``python -m fastbp warmup`` in an image): fastbp reads it, if these sources built
it. Files of another Numba version, CPU or Python are Numba's own misses (its index
records the Numba version and keys each entry on the target triple, CPU name and
features; file names carry Python's version).

Numba (0.68) keys a cached function on its own file's modification time and size only,
while the machine code it caches includes the kernels it calls from other files:
``_kernels.train_epoch`` inlines ``_activations``, ``_losses`` and ``_optim`` code, they
inline ``_vmath``. An edit of ``_losses.py`` alone, or an upgrade that leaves
``__pycache__`` behind, would keep the old code running; and a cache built before the
files were copied (into the wheel that ``pip install`` installs: ``build_backend.py``)
would never be used. Here the whole cache is keyed on the content of every fastbp
source and Numba's version instead: each index file is stamped with that hash
(``sources_digest``), and ``drop_stale_cache`` (called by ``fastbp/__init__.py``) clears
a directory stamped with another.

Loading a cached kernel sets up only Numba's runtime, not its compiler (``Cache.
load_overload``): Numba's own load first imports and installs every typing and lowering
registry, 0.2-0.3 s of a process's first fit that only compiling needs.
"""

import functools
import glob
import hashlib
import io
import os
import pickle
import warnings

import numba
from numba.core import caching, config
from numba.core.runtime import rtsys
from numba.core import dispatcher as _dispatcher

FASTMATH_FLAGS = frozenset({"nsz"})  # no signed zeros: never changes a finite value

JIT = dict(
    cache=os.environ.get("FASTBP_DISABLE_CACHE", "0") != "1",
    nogil=True,
    fastmath=set(FASTMATH_FLAGS),
    error_model="numpy",
)


STAMP = "fastbp-sources.sha256"


def sources():
    """fastbp's files that hold compiled code or its options (those that import numba):
    any of them may be inlined into a kernel cached under another's name."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    for path in sorted(glob.glob(os.path.join(here, "*.py"))):
        if os.path.basename(path) == "__main__.py":  # (the command line: no kernels)
            continue
        with open(path, encoding="utf-8") as f:
            if "numba" in f.read():
                found.append(path)
    return found


def _digest(paths):
    digest = hashlib.sha256(numba.__version__.encode())
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


@functools.cache
def sources_digest():
    """``_digest(sources())``, once a process: the stamp of the whole cache and of each
    of its index files (``Cache``)."""
    return _digest(sources())


def drop_stale_cache(dispatcher, digest):
    """Delete the Numba cache files (``*.nbi``, ``*.nbc``) in ``dispatcher``'s cache
    directory unless that directory's stamp equals ``digest`` (``sources_digest()``: the
    sources' hash); then write the stamp. Nothing happens where caching is off or the directory
    cannot be written (Numba then does not cache there either). Returns True if the
    stamp was written. Numba treats a cache file deleted under another process as a
    cache miss."""
    cache = getattr(dispatcher, "_cache", None)
    cache_dir = getattr(cache, "_cache_path", None)
    if cache_dir is None or not getattr(cache, "writable", True):
        return False
    stamp = os.path.join(cache_dir, STAMP)
    try:
        with open(stamp, "rb") as f:  # (bytes: a damaged stamp is a mismatch, not an error)
            if f.read().strip() == digest.encode():
                return False
    except OSError:
        pass
    try:
        os.makedirs(cache_dir, exist_ok=True)  # (stamped before Numba writes into it)
        for name in os.listdir(cache_dir):
            if name.endswith((".nbi", ".nbc")):
                try:
                    os.remove(os.path.join(cache_dir, name))
                except FileNotFoundError:  # (another process got there first)
                    pass
        tmp = "%s.%d" % (stamp, os.getpid())
        with open(tmp, "w") as f:
            f.write(digest)
        os.replace(tmp, stamp)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Numba's cache, made safe to lose.
# ---------------------------------------------------------------------------------------

_SEAL = b"fastbp-sha256:"  # appended to each file, with the SHA-256 of what precedes it
_PACKAGE = __name__.partition(".")[0]

# The directories fastbp's kernels are cached in, the functions whose compiled code is
# not written anywhere (no directory could be) and how many compiled kernels were loaded
# from a cache: for ``python -m fastbp warmup``'s report.
CACHE_DIRS = set()
IN_MEMORY = []
LOADED = [0]


def _seal(payload):
    return payload + _SEAL + hashlib.sha256(payload).digest()


def _unseal(raw):
    """``raw`` without its seal; ValueError if the seal is missing or does not match."""
    n = len(_SEAL) + 32
    payload = raw[:-n]
    if (len(raw) < n or raw[-n:-32] != _SEAL
            or hashlib.sha256(payload).digest() != raw[-32:]):
        raise ValueError("checksum mismatch: truncated or altered")
    return payload


_warned = set()


def _warn_once(kind, message):
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _damaged(path, exc):
    _warn_once("damaged", (
        "fastbp: a damaged Numba cache file is ignored, its kernel recompiled and the "
        "file rewritten (other damaged files alike, without another warning): "
        "%s: %s: %s" % (path, type(exc).__name__, exc)))


class _PlainUnpickler(pickle.Unpickler):
    """Strings, numbers and containers only: safe on any bytes (no class is looked up,
    so nothing can run)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("not a plain pickle: %s.%s" % (module, name))


class CacheFile(caching.IndexDataCacheFile):
    """Numba's index (``*.nbi``) and data (``*.nbc``) files, each sealed with a SHA-256 of
    its pickle (after it: Numba's own reader ignores the seal). A file that fails the
    check is never unpickled (unpickling damaged bytes can do anything); any error
    reading it is a cache miss, and the compile that follows overwrites it."""

    def _dump(self, obj):  # (both files' pickles go through here)
        return _seal(super()._dump(obj))

    def _load_index(self):
        try:
            with open(self._index_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as e:
            _damaged(self._index_path, e)
            return {}
        try:
            f = io.BytesIO(raw)
            version = _PlainUnpickler(f).load()  # (Numba's first pickle: its version)
            if version != self._version:
                return {}  # another Numba version's index: a miss (Numba's own rule)
            stamp, overloads = pickle.loads(_unseal(f.read()))
        except Exception as e:
            _damaged(self._index_path, e)
            return {}
        # a source of another content: a miss, as in Numba
        return overloads if stamp == self._source_stamp else {}

    def _load_data(self, name):
        path = self._data_path(name)
        with open(path, "rb") as f:
            raw = f.read()
        return pickle.loads(_unseal(raw))

    def load(self, key):
        name = self._load_index().get(key)
        if name is None:
            return None
        try:
            return self._load_data(name)
        except FileNotFoundError:  # removed under us (another process, drop_stale_cache)
            return None
        except Exception as e:
            _damaged(self._data_path(name), e)
            return None


class _Unwritable(caching.InTreeCacheLocator):
    """After Numba's locators, where none found a directory it can write: a locator that
    writes nothing (``Cache`` then only reads, from ``_preferred``'s directories)."""

    def ensure_cache_path(self):
        raise OSError("no directory Numba can write")

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file) if os.path.exists(py_file) else None


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = caching.CompileResultCacheImpl._locator_classes + [_Unwritable]


def _preferred(py_func, locator):
    """The directories, among those there, that Numba would have cached ``py_func`` in
    before ``locator``'s had it been able to write them (NUMBA_CACHE_DIR, then
    ``__pycache__`` beside the source, then the user-wide one): a cache built into a
    read-only install (``python -m fastbp warmup`` in an image build, then run as another
    user or on a read-only file system). Numba itself ignores a directory it cannot
    write, even to read from it."""
    if config.CACHE_LOCATOR_CLASSES:  # (someone else's choice of places)
        return []
    order = [caching.UserProvidedCacheLocator] if config.CACHE_DIR else []
    order += [caching.InTreeCacheLocator, caching.UserWideCacheLocator]
    found = []
    for cls in order:
        if type(locator) is cls:
            break
        path = cls(py_func, locator._py_file).get_cache_path()
        if os.path.isdir(path):
            found.append(path)
    return found


_fresh = {}


def _is_fresh(cache_dir):
    """Whether ``cache_dir``'s stamp is that of these sources: ``drop_stale_cache``
    cannot drop a stale cache in a directory it may not write, so one is read only
    then."""
    if cache_dir not in _fresh:
        try:
            with open(os.path.join(cache_dir, STAMP), "rb") as f:
                _fresh[cache_dir] = f.read().strip() == sources_digest().encode()
        except OSError:
            _fresh[cache_dir] = False
    return _fresh[cache_dir]


class Cache(caching.FunctionCache):
    """Numba's per-function cache over ``CacheFile``; a load that fails in any way is a
    miss, and a save that fails (a full disk, a directory gone read-only) is skipped:
    the kernel compiled in this process is used either way. Where Numba had to fall back
    from the directory it prefers (or found none it can write: ``writable`` is False),
    a kernel not in its own directory is also looked for in the preferred ones, read
    only, if their stamp is fastbp's."""

    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        locator = self._impl.locator
        # Each index is stamped with the hash of fastbp's sources (and Numba's version),
        # not Numba's (the source file's mtime and size): a cache built before the files
        # were copied (into a wheel at ``pip install``, build_backend.py; into an image)
        # stays valid where their content is the same, and only there.
        base, stamp = self._impl.filename_base, sources_digest()
        self.writable = not isinstance(locator, _Unwritable)
        self._cache_file = CacheFile(self._cache_path, base, stamp)
        self._read_only = [CacheFile(path, base, stamp)
                           for path in _preferred(py_func, locator)]

    def _load_overload(self, sig, target_context):  # (Numba's, over more than one file)
        if not self._enabled:
            return None
        key = self._index_key(sig, target_context.codegen())
        files = [self._cache_file] if self.writable else []
        files += [f for f in self._read_only if _is_fresh(f._cache_path)]
        for cache_file in files:
            data = cache_file.load(key)
            if data is not None:
                return self._impl.rebuild(target_context, data)
        return None

    def load_overload(self, sig, target_context):
        # Numba's load_overload first refreshes the target context: it imports and
        # installs every lowering and typing registry (about 60 modules, 0.2-0.3 s once a
        # process), which only compiling uses, and compiling refreshes it itself. A
        # cached kernel of fastbp's needs only Numba's runtime (NRT) linked into the JIT
        # (should one ever need more, its rebuild fails below and it is compiled again).
        rtsys.initialize(target_context)
        try:
            loaded = self._load_overload(sig, target_context)
        except Exception as e:  # e.g. data that unpickles but does not rebuild
            _damaged(self._cache_path, e)
            return None
        if loaded is not None:
            LOADED[0] += 1
        return loaded

    def save_overload(self, sig, data):
        if not self.writable:
            return
        try:
            super().save_overload(sig, data)
        except Exception as e:
            _warn_once("save", (
                "fastbp: Numba's cache could not be written, so later processes will "
                "compile this kernel again: %s: %s" % (type(e).__name__, e)))


# (the original, also when this module is imported a second time)
_numba_enable_caching = getattr(_dispatcher.Dispatcher.enable_caching, "__wrapped__",
                                _dispatcher.Dispatcher.enable_caching)


def _enable_caching(self):
    """``Dispatcher.enable_caching`` (what ``cache=True`` calls), for fastbp's functions
    (their module is in this package) only: ``Cache`` above, which compiles in memory
    (reading a read-only cache if there is one) where Numba finds no directory it can
    write (and raises a RuntimeError: "no locator available"). Every other function gets
    Numba's own."""
    module = getattr(self.py_func, "__module__", None) or ""
    if module.partition(".")[0] != _PACKAGE:
        return _numba_enable_caching(self)
    try:
        self._cache = Cache(self.py_func)
    except Exception:  # (a locator of NUMBA_CACHE_LOCATOR_CLASSES, say)
        self._cache = caching.NullCache()
    if getattr(self._cache, "writable", False):
        CACHE_DIRS.add(self._cache.cache_path)
    else:
        IN_MEMORY.append(self.py_func.__qualname__)


_enable_caching.__wrapped__ = _numba_enable_caching
# Installed before any kernel is decorated: every fastbp module imports JIT from here.
_dispatcher.Dispatcher.enable_caching = _enable_caching
