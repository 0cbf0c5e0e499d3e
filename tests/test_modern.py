"""Spec forms of #13: chunk and split (one entry, several outputs), and names that follow torch's
module paths."""
import json

import pytest

import cnncalc

from conftest import analyze_text


def test_chunk_and_split_expand_to_named_pieces():
    r = analyze_text("""input: 8x6x6
layers:
  - {name: s, type: chunk, chunks: 2}
  - {name: b, type: conv2d, out_channels: 4, kernel_size: 1, inputs: [s.1]}
  - {name: cat, type: concat, inputs: [s.0, b]}
  - {name: sp, type: split, sizes: [3, 5]}
  - {type: relu}
""")
    rows = {x.name: x for x in r.layers}
    assert [x.name for x in r.layers] == ["s.0", "s.1", "b", "cat", "sp.0", "sp.1", "relu_1"]
    assert rows["s.0"].output_shape == rows["s.1"].output_shape == (1, 4, 6, 6)
    assert rows["s.1"].inputs == rows["s.0"].inputs == ["input"] and rows["sp.1"].inputs == ["cat"]
    assert (rows["sp.0"].output_shape[1], rows["sp.1"].output_shape[1]) == (3, 5)
    assert rows["relu_1"].inputs == ["sp.1"]  # the chain continues from the last piece
    assert all(rows[n].params == rows[n].macs == 0 for n in ("s.0", "s.1", "sp.0", "sp.1"))


@pytest.mark.parametrize("entry,message", [
    ("{type: split, sizes: [3, 6]}", "split sizes sum to 9 but the input has 8 channels"),
    ("{type: chunk, chunks: 0}", "chunks: expected greater than or equal to 1"),
    ("{type: chunk, chunks: 2, dim: 2}", "dim: expected 1"),
    ("{type: chunk, chunks: 2, bogus: 1}", "unknown field 'bogus'"),
])
def test_chunk_and_split_mistakes_are_located(entry, message):
    with pytest.raises(cnncalc.CnnError) as err:
        analyze_text(f"input: 8x6x6\nlayers:\n  - {entry}\n")
    p = err.value.problems[0]
    assert message in p.message and p.line == 3


def test_chunk_follows_torch_chunk_rule():
    # torch.chunk(5 channels, 2) gives 3 and 2; (2 channels, 3) gives only 2 pieces of 1
    r = analyze_text("input: 5x2x2\nlayers:\n  - {name: s, type: chunk, chunks: 2}\n")
    assert [x.output_shape[1] for x in r.layers] == [3, 2]
    with pytest.raises(cnncalc.CnnError, match="gives 2 pieces of 1: there is no piece 2"):
        analyze_text("input: 2x2x2\nlayers:\n  - {name: s, type: chunk, chunks: 3}\n")


def test_pieces_are_in_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from cnncalc.vocabulary import spec_schema

    schema = spec_schema()
    ok = {"input": [8, 4, 4], "layers": [{"type": "chunk", "chunks": 2, "name": "s"},
                                          {"type": "split", "sizes": [2, 2], "inputs": ["s.0"]}]}
    jsonschema.validate(ok, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"input": [8, 4, 4], "layers": [{"type": "chunk"}]}, schema)
    assert json.dumps(schema)  # serialisable


def test_names_may_follow_torch_module_paths():
    r = analyze_text("input: 3x8x8\nlayers:\n  - {name: features.0.1, type: conv2d, out_channels: 2, kernel_size: 1}\n"
                     "  - {name: '2', type: relu}\n")
    assert [x.name for x in r.layers] == ["features.0.1", "2"]
