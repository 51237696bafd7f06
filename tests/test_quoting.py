"""Values from outside quoted back in messages one way (cfgp.quoting): as a link's text, cut at QUOTE characters."""

import pytest

from cfgp.properties import parse_filters
from cfgp.quoting import QUOTE, as_text, quoted


def test_a_value_is_quoted_as_the_link_holds_it_and_cut():
    assert quoted("P") == "“P”"
    assert quoted(3.0) == "“3”" and quoted(True) == "“true”" and quoted(None) == "“”"
    long = "x" * (QUOTE + 5)
    assert quoted(long) == f"“{'x' * QUOTE}…”"
    assert quoted(long, 3) == "“xxx…”"
    assert as_text(["a", 1]) == '["a", 1]'


@pytest.mark.parametrize("text", ["band_gap:" + "9" * 200 + "z..1", "w" * 300, "spacegroup_symbol=" + "Q" * 30 + "$"])
def test_filter_messages_quote_at_most_the_limit(text):
    with pytest.raises(ValueError) as err:
        parse_filters(text)
    message = str(err.value)
    assert "“" in message and "”" in message
    inner = message[message.index("“") + 1:message.index("”")]
    assert len(inner.rstrip("…")) <= QUOTE and inner.rstrip("…") in text
