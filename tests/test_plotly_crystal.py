"""The crystal viewer's Plotly figure: every atom of the cell and the cell's edges (a real shipped structure)."""

from cfgp import plotly_crystal


def test_structure_figure_has_every_atom_and_the_cell(tiny_run):
    s = tiny_run.materials.structure(0)
    fig = plotly_crystal.structure_figure(s, title="x")
    atoms = [t for t in fig.data if t.type == "scatter3d" and t.mode == "markers" and t.showlegend is not False]
    assert sum(len(t.x) for t in atoms) == len(s)
    assert {t.name for t in atoms} == {sp.symbol for sp in s.composition.elements}
    cell = [t for t in fig.data if t.name == "cell"][0]
    assert sum(v is None for v in cell.x) == 12  # twelve edges
