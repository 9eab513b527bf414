"""The lake's schemas, and the memory pool its writers use."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa

from flows import lake as lakefs
from tests.support.paths import REPO


def test_documents_schema_has_every_contract_column() -> None:
    names = set(lakefs.documents_schema(["q_example"]).names)
    contract = {"doc_id", "source_uri", "url", "title", "text", "lang", "content_hash", "dup_cluster",
                "is_duplicate", "quality_score", "run_id"}
    assert contract <= names and "q_example" in names
    assert lakefs.documents_schema([]).field("is_duplicate").type == pa.bool_()


def test_importing_the_lake_leaves_arrows_memory_pool_to_the_entry_points() -> None:
    probe = ("import pyarrow as pa; default = pa.default_memory_pool().backend_name; from flows import lake; "
             "assert pa.default_memory_pool().backend_name == default; lake.use_system_memory_pool(); "
             "print(pa.default_memory_pool().backend_name)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "system"
