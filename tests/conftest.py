import os
import sys

import numpy as np
import pytest

# Tests run against the installed package (`make install`), or against a
# development build when PEFTCPP_CORE_DIR points at a CMake build folder.
if os.environ.get("PEFTCPP_CORE_DIR"):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
