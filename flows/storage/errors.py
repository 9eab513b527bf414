"""The one place where a failure of a store becomes a message for people: what failed, on which URI, what to check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class StorageError(RuntimeError):
    """The lake or SOURCE cannot be reached or used; the message names the URI and what to check."""


# What to check on each store: (where its endpoint is set, where its credentials come from).
_SETTINGS = {
    "s3": ("AWS_ENDPOINT_URL or storage options",
           "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, storage options, or the work pool's environment"),
    "gs": ("STORAGE_EMULATOR_HOST or storage options",
           "GOOGLE_APPLICATION_CREDENTIALS, the machine's service account, storage options, or the work pool's "
           "environment"),
    "az": ("the account in AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_ACCOUNT_NAME or storage options",
           "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY / AZURE_STORAGE_SAS_TOKEN, storage options, "
           "or the work pool's environment"),
}
_ALIASES = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az"}
# Words in the errors of the clients that mean the credentials were refused (botocore, gcsfs, azure-core).
_DENIED = ("AccessDenied", "Forbidden", "AuthenticationFailed", "AuthorizationFailure", "InvalidAccessKeyId",
           "SignatureDoesNotMatch", "ClientAuthenticationError", "Invalid Credentials")


def settings(uri: str) -> tuple[str, str]:
    """Where the store of ``uri`` takes its endpoint and its credentials from, for messages."""
    kind = uri.partition("://")[0].lower()
    return _SETTINGS.get(_ALIASES.get(kind, kind), ("storage options", "storage options"))


def unreachable_message(uri: str, err: BaseException, missing: str) -> str:
    """Why ``uri`` could not be listed or read, and what to check; ``missing`` says what a not-found means."""
    endpoint, credentials = settings(uri)
    if isinstance(err, FileNotFoundError):
        return f"{uri}: {missing}; check the name and the endpoint ({endpoint})"
    if isinstance(err, PermissionError) or any(word in f"{type(err).__name__} {err}" for word in _DENIED):
        reason = f"{err}".splitlines()[0][:200]
        return f"{uri}: cannot be listed, access denied ({reason}); check the credentials ({credentials})"
    # The clients' errors for a bad endpoint or network vary by library.
    reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
    return (f"{uri}: cannot be listed, cannot reach the object store ({reason}); check the endpoint "
            f"({endpoint}), the network and the credentials")


@contextmanager
def listing(uri: str, missing: str) -> Iterator[None]:
    """Any failure of the block, a missing name included, raised as a ``StorageError`` that says what to check."""
    try:
        yield
    except Exception as err:
        raise StorageError(unreachable_message(uri, err, missing)) from err


@contextmanager
def reading(uri: str) -> Iterator[None]:
    """Any failure of the store in the block but a missing object (the caller's to judge) raised as a
    ``StorageError``: the read can be tried again, the object is not at fault."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as err:
        raise StorageError(f"{uri}: reading from the store failed ({type(err).__name__}: {err}); check the "
                           "network, the endpoint and the credentials; a re-run reads the file again") from err


def precondition_failed(err: Exception) -> bool:
    """Whether ``err`` is a conditional write's 412 (the object exists, or changed)."""
    if isinstance(err, FileExistsError):  # s3fs's name for 412 Precondition Failed
        return True
    text = f"{type(err).__name__} {err} {err.__cause__!r}"
    return any(word in text for word in ("PreconditionFailed", "pre-conditions", "ConditionalRequestConflict"))
