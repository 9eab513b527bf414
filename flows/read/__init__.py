"""Reading inputs: SOURCE listed once, planned into shards, and every input unit turned into a Document or a Reject."""

from flows.read.decode import DecodeError, decode_bytes
from flows.read.units import (
    STAGE,
    Discovery,
    InputFile,
    ReadConfig,
    SourceError,
    discover,
    iter_units,
    plan_shards,
    read_shard,
    unit_id,
)

__all__ = [
    "STAGE",
    "DecodeError",
    "Discovery",
    "InputFile",
    "ReadConfig",
    "SourceError",
    "decode_bytes",
    "discover",
    "iter_units",
    "plan_shards",
    "read_shard",
    "unit_id",
]
