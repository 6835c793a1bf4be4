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

Set ``FASTBP_DISABLE_CACHE=1`` to compile in memory only (read-only installs).

Numba (0.68) keys a cached function on its own file's content only, while the machine
code it caches includes the kernels it calls from other files: ``_split.split_epoch``
inlines ``_kernels`` code, ``_kernels`` inlines ``_vmath``. An edit of ``_kernels.py``
alone, or an upgrade that leaves ``__pycache__`` behind, would keep the old code running.
``drop_stale_cache`` (called by ``fastbp/__init__.py``) keys the whole cache on every
fastbp source instead.
"""

import glob
import hashlib
import os

import numba

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
        with open(path, encoding="utf-8") as f:
            if "numba" in f.read():
                found.append(path)
    return found


def drop_stale_cache(dispatcher, paths):
    """Delete the Numba cache files (``*.nbi``, ``*.nbc``) in ``dispatcher``'s cache
    directory unless that directory's stamp equals the hash of ``paths`` (and Numba's
    version); then write the stamp. Nothing happens where caching is off or the directory
    cannot be written (Numba then does not cache there either). Returns True if the
    stamp was written. Numba treats a cache file deleted under another process as a
    cache miss."""
    cache_dir = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
    if cache_dir is None:
        return False
    digest = hashlib.sha256(numba.__version__.encode())
    for path in paths:
        with open(path, "rb") as f:
            digest.update(f.read())
    digest = digest.hexdigest()
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
