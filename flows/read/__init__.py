"""Reading inputs: SOURCE listed once, planned into shards, and every input unit turned into a Document or a Reject."""

from flows.read.decode import DecodeError, decode_bytes
from flows.read.shards import plan_shards
from flows.read.sources import discover
from flows.read.stage import iter_units, read_shard
from flows.read.units import STAGE, Discovery, InputFile, ReadConfig, SourceError, unit_id

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
