"""Where the lake and the inputs live: a local folder or an object store, behind one ``Store`` (fsspec)."""

from flows.storage.errors import StorageError, unreachable_message
from flows.storage.filesystems import (
    ENV_PREFIX,
    REDACTED,
    REMOTE_SCHEMES,
    SECRET_OPTION_WORDS,
    filesystem,
    is_remote,
    local_path,
    redact,
    resolve_options,
    scheme,
    split_object_uri,
)
from flows.storage.objects import StoredObject
from flows.storage.store import Store, check_source

__all__ = [
    "ENV_PREFIX",
    "REDACTED",
    "REMOTE_SCHEMES",
    "SECRET_OPTION_WORDS",
    "StorageError",
    "Store",
    "StoredObject",
    "check_source",
    "filesystem",
    "is_remote",
    "local_path",
    "redact",
    "resolve_options",
    "scheme",
    "split_object_uri",
    "unreachable_message",
]
