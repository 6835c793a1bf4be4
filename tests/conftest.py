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
