"""The command line (``python -m numpyvae``) and its tools.

Figures, the latent explorer and the gradient-check table live here.
"""
