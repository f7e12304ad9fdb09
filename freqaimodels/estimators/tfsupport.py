"""TensorFlow helpers: quiet import, directory <-> bytes for pickling non-picklable models."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import weakref
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_tensorflow() -> None:
    """Each fitted model compiles its own tf.function; TF's retracing hints are noise here."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def dir_to_bytes(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


def bytes_to_dir(data: bytes, owner: object) -> Path:
    """Unpack into a temp dir that lives as long as `owner` (TF may read model files lazily)."""
    path = Path(tempfile.mkdtemp(prefix="cbp-model-"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(path, filter="data")
    weakref.finalize(owner, shutil.rmtree, path, True)
    return path
