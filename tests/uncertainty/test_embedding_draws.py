"""Where a never-trained element's embedding rows are drawn from, and which materials the mean over draws predicts."""

import numpy as np
from pymatgen.core import Element

from cfgp.uncertainty.embedding_draws import draw_candidates, f_block, predicted_by_draws, table_distance


def z(*symbols: str) -> list[int]:
    return [Element(s).Z for s in symbols]


def test_an_unseen_lanthanoid_or_actinoid_draws_from_its_trained_neighbours_any_other_from_every_trained_element():
    # the default's trained elements include La-Lu but Pm, Th and U but Ac, and Y, Ba, Hf, O, I
    trained = np.array(sorted(z("O", "Y", "I", "Ba", "La", "Ce", "Nd", "Sm", "Lu", "Hf", "Th", "U")))
    cand = draw_candidates(z("Pm", "Ac", "Xe"), trained)
    assert sorted(cand) == sorted(z("Pm", "Ac", "Xe"))
    assert sorted(cand[Element("Pm").Z].tolist()) == z("La", "Ce", "Nd", "Sm", "Lu")  # row 6, group 3 in pymatgen
    assert sorted(cand[Element("Ac").Z].tolist()) == z("Th", "U")
    np.testing.assert_array_equal(cand[Element("Xe").Z], trained)
    # with no trained lanthanoid, a lanthanoid's nearest are one step away: Y and Th, U (group 3, the rows above
    # and below), Ba and Hf (row 6, groups 2 and 4) -- as on the network trained without the lanthanides
    no_4f = trained[~np.isin(trained, z("La", "Ce", "Nd", "Sm", "Lu"))]
    assert sorted(draw_candidates(z("Pm"), no_4f)[Element("Pm").Z].tolist()) == z("Y", "Ba", "Hf", "Th", "U")
    assert f_block(Element("Lu").Z) and f_block(Element("Ac").Z) and not f_block(Element("Y").Z)
    assert table_distance(Element("Pm").Z, Element("Y").Z) == 1 and table_distance(Element("Xe").Z, 53) == 1


def test_only_graphs_with_an_unseen_lanthanoid_or_actinoid_are_predicted_by_the_mean_over_draws():
    graphs = [{"atom": np.array(z("Ac", "O"))}, {"atom": np.array(z("Xe", "O", "F"))}, {"atom": np.array(z("Mg", "O"))},
              {"atom": np.array(z("La", "O"))}]
    # La is trained here: only Ac (unseen, f-block) makes the first graph predicted by its draws
    assert predicted_by_draws(graphs, z("Ac", "Xe")).tolist() == [True, False, False, False]
    assert predicted_by_draws(graphs, z("Xe")).tolist() == [False, False, False, False]
