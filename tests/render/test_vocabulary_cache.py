"""`cnncalc layers` reads field types from annotations, `cnncalc schema` keeps its text in a cache
(#30): both must say exactly what pydantic's JSON Schema says."""
from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field, WithJsonSchema

from cnncalc.layers import REGISTRY
from cnncalc.render import vocabulary as voc


def test_field_types_from_annotations_are_those_of_the_json_schema():
    """Every field of every type is read from its annotation (no fallback), as the JSON Schema says."""
    for name, cls in REGISTRY.items():
        full = cls.model_json_schema()["properties"]
        assert set(voc._props(cls)) == set(full), name
        for attr, f in cls.model_fields.items():
            prop = voc._prop(f.annotation, f.metadata)
            assert prop is not None and f.json_schema_extra is None, (name, attr)  # (the fast path, not the fallback)
            assert voc._kind(prop) == voc._kind(full[f.alias or attr]), (name, attr)


def test_an_annotation_it_does_not_know_falls_back_to_the_json_schema():
    class Inner(BaseModel):
        x: int = 0

    class Odd(BaseModel):
        inner: Inner = Inner()
        when: Optional[Annotated[Any, WithJsonSchema({"type": "integer"})]] = None
        mode: Literal["a", "b"] = "a"
        sizes: list[Annotated[int, Field(ge=1)]] = []

    assert voc._prop(Odd.model_fields["inner"].annotation) is None
    props = voc._props(Odd)  # type: ignore[arg-type]
    schema = Odd.model_json_schema()["properties"]
    assert {k: voc._kind(v) for k, v in props.items()} == {k: voc._kind(v) for k, v in schema.items()}
    assert voc._kind(props["when"]) == "integer | null"
    assert voc._kind(props["mode"]) == "'a' | 'b'" and voc._kind(props["sizes"]) == "list[integer]"


def test_the_table_leaves_descriptions_out_and_the_detail_keeps_them():
    cls = REGISTRY["conv2d"]
    short = voc.fields_of(cls, docs=False)
    full = voc.fields_of(cls)
    assert [f[:3] for f in short] == [f[:3] for f in full]
    assert all(f[3] == "" for f in short)
    assert dict((f[0], f[3]) for f in full)["out_channels"] == voc.attribute_docs(cls)["out_channels"] != ""


def test_schema_text_is_cached_under_a_key_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCALC_CACHE_DIR", str(tmp_path / "cache"))
    expected = json.dumps(voc.spec_schema(), indent=2)
    assert voc.spec_schema_text(cache=False) == expected
    assert voc.spec_schema_text() == expected
    files = os.listdir(tmp_path / "cache")
    assert files == [f"schema-{voc._source_key()}.json"]
    path = tmp_path / "cache" / files[0]

    built = []
    monkeypatch.setattr(voc, "spec_schema", lambda: built.append(1) or json.loads(expected))
    assert voc.spec_schema_text() == expected and built == []  # read back, not built

    path.write_text(path.read_text()[:-10])  # damaged: its checksum no longer matches
    assert voc.spec_schema_text() == expected and built == [1]
    assert voc._read_cached(str(path)) == expected  # written again, whole

    stale, fresh = tmp_path / "cache" / f"schema-{'a' * 32}.json", tmp_path / "cache" / f"schema-{'b' * 32}.json"
    for other in (stale, fresh, tmp_path / "cache" / "schema-api.json"):  # (not this cache's: a user's file)
        other.write_text("old")
    os.utime(stale, (0, 0))  # another key's, unused for a week: removed on the next write; the others stay
    path.unlink()
    assert voc.spec_schema_text() == expected
    assert sorted(os.listdir(tmp_path / "cache")) == sorted([*files, fresh.name, "schema-api.json"])


def test_a_cache_file_is_printed_only_as_json_dumps_writes_it(tmp_path, monkeypatch):
    """Whoever else can write the cache folder cannot make `cnncalc schema` print control characters or
    anything but a JSON object: a file with a matching checksum but other content is rebuilt; a FIFO at the
    path is not opened for reading (it would block)."""
    import hashlib

    monkeypatch.setenv("CNNCALC_CACHE_DIR", str(tmp_path))
    expected = json.dumps(voc.spec_schema(), indent=2)
    path = tmp_path / f"schema-{voc._source_key()}.json"
    for text in ('{"x": "\x1b]0;pwned\x07\x1b[2J"}', "not json", "[1, 2]", '{"x": "caf\u00e9"}'):
        body = text.encode("utf-8")
        path.write_bytes(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
        assert voc._read_cached(str(path)) is None, text
        assert voc.spec_schema_text() == expected
    if hasattr(os, "mkfifo"):
        path.unlink()
        os.mkfifo(path)
        assert voc._read_cached(str(path)) is None
    monkeypatch.setenv("CNNCALC_CACHE_DIR", "relative/cache")  # never a folder relative to the working one
    assert voc.schema_cache_dir() == ""


def test_the_key_follows_the_sources(tmp_path):
    fake = tmp_path / "cnncalc"
    (fake / "layers").mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (fake / "layers" / "conv.py").write_text("A = 1\n")
    first = voc._source_key(str(fake))
    assert first != voc._source_key()
    (fake / "layers" / "conv.py").write_text("A = 2\n")
    assert voc._source_key(str(fake)) != first
    (fake / "layers" / "conv.py").write_text("A = 1\n")
    assert voc._source_key(str(fake)) == first
    (fake / "layers" / "notes.txt").write_text("not code")
    assert voc._source_key(str(fake)) == first
    (fake / "__init__.py").write_text('__version__ = "0.2.0"\n')
    assert voc._source_key(str(fake)) != first
    assert voc._source_key(str(tmp_path / "nothing")) is None  # no sources (a zip): nothing to key a cache on


def test_without_sources_the_schema_is_built_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNCALC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(voc, "_source_key", lambda root=None: None)
    assert voc.spec_schema_text() == json.dumps(voc.spec_schema(), indent=2)
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_that_cannot_be_written_is_no_error(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    monkeypatch.setenv("CNNCALC_CACHE_DIR", str(folder))
    try:
        assert voc.spec_schema_text() == json.dumps(voc.spec_schema(), indent=2)
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_a_cache_path_that_is_a_file_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CNNCALC_CACHE_DIR", str(blocker / "cnncalc"))  # its parent is a file
    assert voc.spec_schema_text() == json.dumps(voc.spec_schema(), indent=2)


def test_the_schema_command_prints_the_same_text_built_or_read(tmp_path):
    from typer.testing import CliRunner

    from cnncalc.cli import app

    env = {"CNNCALC_CACHE_DIR": str(tmp_path)}
    first, second = (CliRunner().invoke(app, ["schema"], env=env) for _ in range(2))
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout == json.dumps(voc.spec_schema(), indent=2) + "\n"
    assert len(os.listdir(tmp_path)) == 1


def test_no_home_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNCALC_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)  # home unknown: '~' stays '~'
    monkeypatch.chdir(tmp_path)
    assert voc.schema_cache_dir() == ""
    assert voc.spec_schema_text() == json.dumps(voc.spec_schema(), indent=2)
    assert os.listdir(tmp_path) == []  # nothing written where the command ran
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert voc.schema_cache_dir() == str(tmp_path / "xdg" / "cnncalc")
