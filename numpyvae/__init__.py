"""numpyvae: Variational Autoencoders from scratch in NumPy.

Layers with hand-written forward/backward passes, Adam, numba convolution
kernels, finite-difference gradient checks, and the two VAEs of the report.
"""

import os

# numba's OpenMP pool and OpenBLAS's pool share two cores; threads that spin
# while idle starve the other pool (10-50x slowdowns were measured). This must
# be set before numba starts its threads, so it is done at package import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
