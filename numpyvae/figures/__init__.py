"""The figures of a run: PNGs drawn from a trained model and its history.

``plots`` holds the figures and their building blocks, ``latent_health_figure`` the KL per
latent dimension. This room sits below the command line, ``learn`` and ``reproduce``, which
draw figures, and above ``training``, through which it reads runs and writes files.
"""
