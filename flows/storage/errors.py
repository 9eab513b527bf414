"""The one place where a failure of a store becomes a message for people: what failed, on which URI, what to check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class StorageError(RuntimeError):
    """The lake or SOURCE cannot be reached or used; the message names the URI and what to check."""


def unreachable_message(uri: str, err: BaseException, missing: str) -> str:
    """Why ``uri`` could not be listed or read, and what to check; ``missing`` says what a not-found means."""
    if isinstance(err, FileNotFoundError):
        return f"{uri}: {missing}; check the name and the endpoint (AWS_ENDPOINT_URL or storage options)"
    if isinstance(err, PermissionError):
        return (f"{uri}: cannot be listed, access denied ({err}); check the credentials (AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, storage options, or the work pool's environment)")
    # The clients' errors for a bad endpoint or network vary by library.
    return (f"{uri}: cannot be listed, cannot reach the object store ({type(err).__name__}: {err}); check the "
            "endpoint (AWS_ENDPOINT_URL), the network and the credentials")


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
