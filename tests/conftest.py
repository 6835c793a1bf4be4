import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py

DTYPES = [np.float64, np.float32]
# Kernel vs NumPy reference: float64 to rounding, float32 to float32 rounding.
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.fixture
def nrt_stats():
    """A reader of Numba's runtime allocation counters (alloc, free, meminfo alloc, free)."""
    from numba.core.runtime import _nrt_python

    was_on = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()

    def read():
        return np.array([_nrt_python.memsys_get_stats_alloc(),
                         _nrt_python.memsys_get_stats_free(),
                         _nrt_python.memsys_get_stats_mi_alloc(),
                         _nrt_python.memsys_get_stats_mi_free()])

    yield read
    if not was_on:
        _nrt_python.memsys_disable_stats()
