"""protocol.encode_json's encoder made once against json.dumps (property test).

Not in test_protocol.py: that file also runs inside Pyodide, with plain asserts only.
"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shotx.client import protocol


_ENCODABLE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | st.binary(max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner)
    | st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.booleans(), st.none()), inner, max_size=3),
    max_leaves=10)


@given(_ENCODABLE)
def test_encode_json_with_its_encoder_made_once_encodes_as_json_dumps(value):
    """protocol.encode_json runs one C encoder made once (no cycle-check dict): the same text as
    json.dumps with the wire's options, or the same kind of refusal (TypeError, ValueError)."""
    def outcome(encode):
        try:
            return "text", encode(value)
        except (TypeError, ValueError) as error:
            return "refused", type(error).__name__

    stock = outcome(lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    ours = outcome(protocol.encode_json)
    if stock[0] == "text" and not stock[1].isascii():  # encode_json also refuses lone surrogates
        try:
            protocol.check_storable(stock[1], "x")
        except ValueError:
            stock = ("refused", "ValueError")
    assert ours == stock


def test_encode_json_refuses_a_cycle_as_json_does():
    looped: dict = {}
    looped["self"] = [looped]
    with pytest.raises(ValueError, match="Circular reference detected"):
        protocol.encode_json(looped)
