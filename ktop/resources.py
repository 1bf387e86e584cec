"""Finding the files that ship beside the code: BPF C sources and themes.

In a wheel they live in ``ktop/_data`` (hatchling force-include); in a
source checkout (editable install) they sit at the top of the tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data_dir(name: str) -> Path:
    packaged = resources.files("ktop") / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parent.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"ktop's {name}/ folder is missing from the installation")


def bpf_dir() -> Path:
    """Absolute folder of the BPF C sources (BCC otherwise looks beside argv[0])."""
    return _data_dir("bpf")


def bpf_source(name: str) -> Path:
    return bpf_dir() / f"{name}.bpf.c"


def themes_dir() -> Path:
    return _data_dir("themes")
