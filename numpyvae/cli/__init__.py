"""The command line (``python -m numpyvae``) and its tools.

The latent explorer and the gradient-check table live here; the figures of a run in
``numpyvae.figures``.
"""
