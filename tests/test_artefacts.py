"""Artefacts on disk: JSON read through the package's bounded reader, written atomically."""

import os
import re

import numpy as np
import pytest

from cfgp.artefacts import DEFAULT_RUN, MAX_JSON_BYTES, read_json, write_json
from cfgp.data import DataError


def test_read_json_round_trips_what_write_json_wrote(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3)})
    assert read_json(path) == {"n": 3, "x": 0.5, "v": [0, 1, 2]}


def test_read_json_refuses_a_file_over_its_limit_naming_path_and_limit(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 50 + "0]")  # 103 bytes of valid JSON
    assert len(read_json(path, limit=200)) == 51
    with pytest.raises(DataError, match=re.escape(str(path)) + r": 103 bytes; the limit is 100 bytes"):
        read_json(path, limit=100)


def test_read_json_refuses_what_is_not_a_regular_json_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path)) + r": not a regular file \(a folder\)"):
        read_json(tmp_path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opened non-blocking and refused before any read: no hang waiting for a writer
    with pytest.raises(DataError, match=re.escape(str(fifo)) + r": not a regular file \(a named pipe"):
        read_json(fifo)
    torn = tmp_path / "torn.json"
    torn.write_text('{"a": [1, 2')
    with pytest.raises(DataError, match=re.escape(str(torn)) + r": not valid JSON .* at line 1"):
        read_json(torn)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(DataError, match=re.escape(str(latin)) + r": not a UTF-8 text file"):
        read_json(latin)


def test_read_json_of_a_missing_file_is_file_not_found_naming_it(tmp_path):
    """Callers tell "not there yet" from "there but bad" by the type (a DataError is a ValueError)."""
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'nope.json')) + r": no such file"):
        read_json(tmp_path / "nope.json")


@pytest.mark.skipif(not (DEFAULT_RUN / "run.json").exists(), reason="the embedded default is not built")
def test_every_shipped_json_artefact_is_read_well_within_the_limit():
    files = sorted(DEFAULT_RUN.rglob("*.json"))
    assert {"run.json", "split.json", "gp.json"} <= {p.name for p in files}
    for path in files:
        assert path.stat().st_size < MAX_JSON_BYTES / 100, path  # the largest, split.json, is 240 kB
        assert isinstance(read_json(path), (dict, list)), path
