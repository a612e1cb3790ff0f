"""Loading DIR/STEP.py, and turning what goes wrong in it into a message for the learner."""

from __future__ import annotations

import importlib.util
import sys
import traceback
import types
from pathlib import Path

from .steps import Step

DEFAULT_DIR = "learn"
_LEARN_PKG = Path(__file__).resolve().parent
_GRADCHECK = _LEARN_PKG.parent / "nn" / "gradcheck.py"


class StepProblem(Exception):
    """The check cannot go on; ``str(self)`` is the whole message for the learner."""


def step_path(step: Step, directory: str | Path) -> Path:
    return Path(directory) / f"{step.name}.py"


def start_command(step: Step, directory: str | Path) -> str:
    tail = "" if Path(directory) == Path(DEFAULT_DIR) else f" --dir {directory}"
    return f"python -m numpyvae learn start {step.name}{tail}"


def load_module(step: Step, directory: str | Path) -> types.ModuleType:
    """Import DIR/STEP.py afresh, with DIR on sys.path so it may import earlier steps.

    Each file is registered under its step's name: ``import conv2d`` inside the
    learner's ``conv_transpose2d.py`` gets their own ``conv2d.py``. Modules
    loaded from DIR before are dropped first, so an edited file is read again.
    """
    path = step_path(step, directory)
    if not path.is_file():
        raise StepProblem(f"{path} does not exist: run `{start_command(step, directory)}` "
                          "to write its stub, then fill it in")
    folder = path.parent.resolve()
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if file and Path(file).resolve().parent == folder:
            del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(step.name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[step.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[step.name]
            raise StepProblem(learner_traceback(e, f"importing {path} failed")) from None
    finally:
        sys.path.remove(str(folder))
    return module


def _is_checker_frame(filename: str) -> bool:
    """Frames of the grader itself, of the gradient checker it calls, and of importlib."""
    if filename.startswith("<frozen"):
        return True
    try:
        p = Path(filename).resolve()
    except OSError:
        return False
    return p == _GRADCHECK or _LEARN_PKG in p.parents


def learner_traceback(exc: BaseException, headline: str) -> str:
    """The traceback of ``exc`` without the checker's frames: the learner's file and line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not _is_checker_frame(f.filename)]
    text = "".join(traceback.format_list(frames)) + "".join(
        traceback.format_exception_only(type(exc), exc))
    return f"{headline}:\nTraceback (your code, most recent call last):\n{text.rstrip()}"


def _is_learner_frame(filename: str) -> bool:
    """Neither the package, nor Python's or an installed library's, nor importlib's."""
    if filename.startswith("<frozen"):
        return False
    p = Path(filename).resolve()
    outside = (_LEARN_PKG.parent, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())
    return not any(root == p or root in p.parents for root in outside)


def has_learner_frame(exc: BaseException) -> bool:
    """Did ``exc`` pass through the learner's code (their file, or a notebook cell)?"""
    return any(_is_learner_frame(f.filename) for f in traceback.extract_tb(exc.__traceback__))
