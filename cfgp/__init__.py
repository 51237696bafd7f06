"""cfgp: convolution-fed Gaussian processes for materials properties.

MEGNet graph-network latents feed a Laplacian-kernel Gaussian process that predicts
formation energy with an uncertainty (Allotey, Butler & Thiyagalingam, JCP 2021).
"""

import os as _os

# megnet needs legacy Keras (tf-keras); this must be set before TensorFlow is first
# imported anywhere, so it lives at the top of the package and users never set it.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# pymatgen calls its own deprecated ``gcd`` inside every reduced formula (2025.10.7: thousands of FutureWarnings
# in a server's log, one per formula); the call is pymatgen's, not ours, so only that message is silenced
import warnings as _warnings  # noqa: E402

_warnings.filterwarnings("ignore", message="gcd is deprecated", category=FutureWarning)

__version__ = "0.1.0"

from cfgp.data import DataError, Materials, load_materials  # noqa: E402

__all__ = ["DataError", "Materials", "load_materials", "__version__"]
