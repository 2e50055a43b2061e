"""Projects and versions: where a LoRA's datasets, settings and training runs live on disk.

``Store(root)`` manages ``projects/<project>/versions/<version>/`` under one root folder (the
WebUI's ``outputs/train_tools/`` or a folder given to the standalone app). Nothing here imports
the WebUI or gradio.
"""

from ..atomic import FileLock, LockTimeout, atomic_write_bytes, atomic_write_json, atomic_write_text
from .layout import VersionPaths
from .names import InvalidNameError, validate_name
from .settings import load_settings, save_settings, update_settings
from .storage import ProjectInfo, Store, StoreError, TrashEntry, VersionInfo

__all__ = [
    "FileLock",
    "InvalidNameError",
    "LockTimeout",
    "ProjectInfo",
    "Store",
    "StoreError",
    "TrashEntry",
    "VersionInfo",
    "VersionPaths",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "load_settings",
    "save_settings",
    "update_settings",
    "validate_name",
]
