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
"""

import os

FASTMATH_FLAGS = frozenset({"nsz"})  # no signed zeros: never changes a finite value

JIT = dict(
    cache=os.environ.get("FASTBP_DISABLE_CACHE", "0") != "1",
    nogil=True,
    fastmath=set(FASTMATH_FLAGS),
    error_model="numpy",
)
