"""The property catalogue and filters on the shipped oxides: ranges, values, several at once, NaN, and the link codec
(round trip, and clear refusals of bad or hostile text)."""

import numpy as np
import pytest

from cfgp.properties import (CATALOGUE, MAX_FILTERS, categorical_properties, describe_filters, filter_mask,
                             format_filters, numeric_properties, parse_filters)


@pytest.fixture(scope="module")
def frame():
    from cfgp.data import DEFAULT_DATASET, load_materials

    return load_materials(DEFAULT_DATASET, parse_structures=False).frame


def test_the_data_set_carries_every_material_property(frame):
    assert {"band_gap", "efermi", "total_magnetization", "volume_per_atom", "nsites", "spacegroup_number"} <= set(
        numeric_properties(frame))
    assert categorical_properties(frame) == ["spacegroup_symbol"]  # split comes with a run's results
    assert frame.band_gap.notna().mean() > 0.99 and (frame.band_gap.dropna() >= 0).all()
    assert frame.volume_per_atom.between(5, 100).all()  # Å³ per atom: H2O ice 6.4 to Cs7O 92
    assert all(p.label for p in CATALOGUE.values())


def test_a_range_keeps_exactly_the_rows_inside(frame):
    mask = filter_mask(frame, [("band_gap", 0.5, 3.0)])
    bg = frame.band_gap.to_numpy()
    assert mask.sum() == ((bg >= 0.5) & (bg <= 3.0)).sum() > 1000
    assert not (mask & np.isnan(bg)).any()
    open_hi = filter_mask(frame, [("band_gap", 3.0, None)])
    assert open_hi.sum() == (bg >= 3.0).sum()


def test_several_filters_hold_together(frame):
    filters = [("band_gap", 1.0, None), ("spacegroup_symbol", {"Pnma", "P2_1/c"}), ("nsites", None, 40)]
    mask = filter_mask(frame, filters)
    sub = frame[mask]
    assert len(sub) > 50 and (sub.band_gap >= 1).all() and (sub.nsites <= 40).all()
    assert set(sub.spacegroup_symbol) == {"Pnma", "P2_1/c"}
    assert mask.sum() < filter_mask(frame, filters[:2]).sum() < filter_mask(frame, filters[:1]).sum()
    assert filter_mask(frame, []).all()


def test_link_text_round_trips(frame):
    filters = [("band_gap", 0.5, 3.0), ("volume_per_atom", None, 12.5), ("spacegroup_symbol", {"P2_1/c", "Pnma"})]
    text = format_filters(filters)
    assert text == "band_gap:0.5..3;volume_per_atom:..12.5;spacegroup_symbol=P2_1/c|Pnma"
    back = parse_filters(text)
    assert back == [("band_gap", 0.5, 3.0), ("volume_per_atom", None, 12.5),
                    ("spacegroup_symbol", frozenset({"P2_1/c", "Pnma"}))]
    assert (filter_mask(frame, back) == filter_mask(frame, filters)).all()
    assert parse_filters("") == []
    assert "band gap (eV)" in describe_filters(back)


@pytest.mark.parametrize("text, reason", [
    ("colour:0..1", "unknown property"),
    ("band_gap:abc..1", "is not a number"),
    ("band_gap:3..1", "is above the maximum"),
    ("band_gap:1", "min..max"),
    ("band_gap=1", "is numeric"),
    ("spacegroup_symbol:0..1", "is categorical"),
    ("band_gap:nan..1", "finite"),
    ("hello", "is not a filter"),
    ("spacegroup_symbol=<script>alert(1)</script>", "not a value"),
    ("spacegroup_symbol=<img src=x onerror=alert(1)>", "not a value"),
    ("spacegroup_symbol=", "at least one value"),
    ("x" * 700, "limit"),
    (";".join(["band_gap:0..1"] * (MAX_FILTERS + 1)), "at most"),
])
def test_bad_link_text_is_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_filters(text)


def test_a_filter_on_a_missing_column_names_it(frame):
    with pytest.raises(ValueError, match="no split"):
        filter_mask(frame, [("split", {"test"})])


def test_marker_sizes_follow_the_property_and_clip_its_extremes(frame):
    from cfgp.properties import SIZE_RANGE, marker_sizes

    v = frame.volume_per_atom.to_numpy(float).copy()
    v[0] = np.nan
    s = marker_sizes(v)
    assert s[0] == SIZE_RANGE[0] and s.min() == SIZE_RANGE[0] and s.max() == SIZE_RANGE[1]
    order = np.argsort(v[1:])
    assert (np.diff(s[1:][order]) >= 0).all()  # bigger cells per atom, bigger markers
    assert s[int(np.nanargmax(v))] == SIZE_RANGE[1]  # Cs7O clipped to the largest size, not off the scale
    assert (marker_sizes(np.full(5, 3.0)) == np.mean(SIZE_RANGE)).all()
