"""Storage anywhere: locations are URIs (`uris`), one filesystem layer for everything that is not
a Delta table (`files`), and one object-store configuration for every engine (`settings`).

Layer 2 (docs/architecture.md): it depends only on `smar.errors`.
"""

from smar.storage.settings import DEFAULT_CUSTOM_ENDPOINT_REGION, StorageSettings, storage_settings_from_env
from smar.storage.uris import display, engine_location, is_local, join, local_path, normalize_location

__all__ = [
    "DEFAULT_CUSTOM_ENDPOINT_REGION",
    "StorageSettings",
    "display",
    "engine_location",
    "is_local",
    "join",
    "local_path",
    "normalize_location",
    "storage_settings_from_env",
]
