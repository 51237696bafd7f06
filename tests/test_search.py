"""Search as a researcher names materials, on the shipped oxides: the paper's three named phosphates by formula
(reduced or not), by id, and element sets with exclusions; unreadable queries say why."""

import numpy as np
import pytest

from cfgp.search import MAX_QUERY, SearchError, build_formula_index, search


@pytest.fixture(scope="module")
def frame():
    from cfgp.data import DEFAULT_DATASET, load_materials

    return load_materials(DEFAULT_DATASET, parse_structures=False).frame


@pytest.fixture(scope="module")
def index(frame):
    return build_formula_index(frame)


@pytest.mark.parametrize("query, ids", [
    ("ZrP2(HO3)2", {"mp-24030", "mp-643013"}),  # both polymorphs
    ("Zr2P4H4O12", {"mp-24030", "mp-643013"}),  # not reduced: the same formula
    ("SnPO3F", {"mp-555838"}), ("In3(PO4)2", {"mp-28708"}), ("In6P4O16", {"mp-28708"}),
])
def test_the_papers_phosphates_by_formula(frame, index, query, ids):
    res = search(frame, query, index)
    assert res.kind == "formula" and set(frame["material_id"].iloc[res.rows]) == ids and res.n_matches == len(ids)


def test_by_id_case_insensitive(frame, index):
    res = search(frame, "MP-555838", index)
    assert res.kind == "id" and frame["material_id"].iat[int(res.rows[0])] == "mp-555838"


@pytest.mark.parametrize("query", ["P F -Si", "contains P and F, no Si", "P,F,!Si", "p f without si"])
def test_element_sets_with_exclusions(frame, index, query):
    res = search(frame, query, index)
    expected = {mid for mid, s in zip(frame["material_id"], frame["elements"])
                if {"P", "F"} <= set(s) and "Si" not in s}
    assert res.kind == "elements" and (res.include, res.exclude) == (["F", "P"], ["Si"])
    assert res.n_matches == len(expected) > 0 and set(frame["material_id"].iloc[res.rows]) <= expected
    assert "mp-555838" in set(frame["material_id"].iloc[res.rows]) or res.n_matches > len(res.rows)


def test_a_single_element_is_an_element_set_not_a_formula(frame, index):
    res = search(frame, "Eu", index)
    assert res.kind == "elements" and res.n_matches == int(np.sum(["Eu" in s for s in frame["elements"]]))


@pytest.mark.parametrize("query, words", [("", "type a material id"), ("Xx Yy", "not an element symbol"),
                                          ("<script>", "not an element symbol"), ("P" * (MAX_QUERY + 1), "too long")])
def test_bad_queries_say_why(frame, index, query, words):
    with pytest.raises(SearchError, match=words):
        search(frame, query, index)
