"""The analyses without DP equal numpy/scipy/pandas on the pooled rows (clamped to the
declared bounds), computed party by party through ``aggregate`` and the ring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from mpc.errors import QueryError
from mpc.protocol.frame import Condition, GroupKey, Op
from mpc.protocol.spec import Statistic
from mpc.ring import check_headroom
from mpc.stats import definition
from tests.unit.stats._analyses_fake import make_spec, reveal, run, split

BOUNDS = {"x": (-5.0, 5.0), "y": (0.0, 100.0), "z": (-1.0, 3.0)}
SEXES = ("f", "m")
COLOURS = ("red", "green", "blue")


def dataset(rows: int = 600, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2.5, rows)  # some values beyond the bounds: clamping matters
    y = 50 + 8 * x + rng.normal(0, 15, rows)
    z = rng.uniform(-2, 4, rows)
    sex = rng.choice(np.array((*SEXES, "other")), rows, p=[0.45, 0.45, 0.1])
    colour = rng.choice(np.array(COLOURS), rows, p=[0.5, 0.3, 0.2])
    colour = np.where((sex == "f") & (rng.uniform(size=rows) < 0.5), "red", colour)
    return {"x": x, "y": y, "z": z, "sex": sex, "colour": colour}


def clamped(data: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.column_stack([np.clip(data[c], *BOUNDS[c]) for c in names])


@pytest.mark.parametrize("statistic", [Statistic.COVARIANCE, Statistic.CORRELATION])
def test_covariance_and_correlation_match_numpy(statistic: Statistic) -> None:
    data = dataset()
    spec = make_spec(statistic, BOUNDS)
    values = run(spec, split(data, 3)).reshape(3, 3)
    pooled = clamped(data, ["x", "y", "z"])
    expected = np.cov(pooled, rowvar=False)
    if statistic is Statistic.CORRELATION:
        expected = np.corrcoef(pooled, rowvar=False)
    np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.diag(values) > 0)


def test_grouped_filtered_covariance_per_cell() -> None:
    data = dataset()
    key = GroupKey("sex", categories=SEXES)
    where = Condition(Op.GT, "z", value=0.0)
    spec = make_spec(
        Statistic.COVARIANCE, {"x": BOUNDS["x"], "y": BOUNDS["y"]}, group_by=(key,), where=where
    )
    values = run(spec, split(data, 3)).reshape(2, 2, 2)
    for g, sex in enumerate(SEXES):
        rows = (data["sex"] == sex) & (data["z"] > 0)
        expected = np.cov(clamped({c: v[rows] for c, v in data.items()}, ["x", "y"]), rowvar=False)
        np.testing.assert_allclose(values[g], expected, rtol=1e-6, atol=1e-6)
    layout = definition(spec.statistic).layout(spec)  # type: ignore[misc]
    assert layout.index == [("f", "x"), ("f", "y"), ("m", "x"), ("m", "y")]
    assert layout.index_names == ["sex", "column"] and layout.columns == ["x", "y"]


def test_covariance_of_empty_or_single_row_cell_is_nan() -> None:
    data = dataset(rows=40)
    data["sex"][:] = "f"
    data["sex"][0] = "m"  # one row only
    key = GroupKey("sex", categories=(*SEXES, "none"))
    spec = make_spec(Statistic.CORRELATION, {"x": BOUNDS["x"], "y": BOUNDS["y"]}, group_by=(key,))
    values = run(spec, split(data, 2)).reshape(3, 2, 2)
    assert np.all(np.isfinite(values[0]))
    assert np.all(np.isnan(values[1])) and np.all(np.isnan(values[2]))


def test_correlation_of_constant_column_is_nan_off_diagonal() -> None:
    data = dataset(rows=50)
    data["z"] = np.full(50, 10.0)  # clamped to 3 everywhere
    spec = make_spec(Statistic.CORRELATION, BOUNDS)
    values = run(spec, split(data, 3)).reshape(3, 3)
    assert np.isnan(values[2, 0]) and np.isnan(values[2, 2])
    assert values[0, 0] == 1.0 and -1 <= values[0, 1] <= 1


def test_covariance_reads_only_one_aggregate() -> None:
    from tests.unit.stats._analyses_fake import FakeData

    data = FakeData(dataset(rows=10))
    spec = make_spec(Statistic.COVARIANCE, BOUNDS)
    definition(spec.statistic).local(spec, data, None)
    assert len(data.requests) == 1
    assert len(data.requests[0].terms) == 3 + 6


def test_contingency_matches_scipy() -> None:
    data = dataset()
    keys = (GroupKey("sex", categories=SEXES), GroupKey("colour", categories=COLOURS))
    spec = make_spec(Statistic.CONTINGENCY, group_by=keys)
    values = run(spec, split(data, 3))
    table = values[:6].reshape(2, 3)
    kept = np.isin(data["sex"], SEXES)
    crosstab = pd.crosstab(data["sex"][kept], data["colour"][kept])
    expected = crosstab.loc[list(SEXES), list(COLOURS)].to_numpy()
    np.testing.assert_array_equal(table, expected)
    chi2, p, dof, _ = scipy_stats.chi2_contingency(expected, correction=False)
    np.testing.assert_allclose(values[6:], [chi2, dof, p], rtol=1e-9)
    assert p < 0.01  # the planted dependence is found
    layout = definition(spec.statistic).layout(spec)  # type: ignore[misc]
    assert layout.extras == ["chi2", "dof", "p_value"] and layout.columns == list(COLOURS)


def test_contingency_with_binned_key_and_empty_rows() -> None:
    data = dataset()
    keys = (
        GroupKey("colour", categories=(*COLOURS, "purple")),  # an all-zero row
        GroupKey("x", edges=(-5.0, -1.0, 0.0, 1.0, 5.0, 6.0)),  # an all-zero column
    )
    spec = make_spec(Statistic.CONTINGENCY, group_by=keys)
    values = run(spec, split(data, 3))
    table = values[:20].reshape(4, 5)
    bins = np.minimum(np.searchsorted(keys[1].edges, np.clip(data["x"], -5, 6), "right") - 1, 4)
    expected = np.zeros((4, 5))
    for r, colour in enumerate(COLOURS):
        expected[r] = np.bincount(bins[data["colour"] == colour], minlength=5)
    np.testing.assert_array_equal(table, expected)
    assert not expected[3].any()  # purple
    nonzero = expected[expected.sum(axis=1) > 0][:, expected.sum(axis=0) > 0]
    chi2, p, dof, _ = scipy_stats.chi2_contingency(nonzero, correction=False)
    np.testing.assert_allclose(values[20:], [chi2, dof, p], rtol=1e-9)


def test_contingency_drops_an_empty_column() -> None:
    data = dataset()
    data["x"] = np.clip(data["x"], -4.0, 4.0)
    keys = (GroupKey("colour", categories=COLOURS), GroupKey("x", edges=(-5.0, 0.0, 4.5, 5.0)))
    values = run(make_spec(Statistic.CONTINGENCY, group_by=keys), split(data, 3))
    table = values[:9].reshape(3, 3)
    assert not table[:, 2].any() and table[:, :2].all()
    chi2, p, dof, _ = scipy_stats.chi2_contingency(table[:, :2], correction=False)
    np.testing.assert_allclose(values[9:], [chi2, dof, p], rtol=1e-9)


def test_contingency_below_two_by_two_gives_nan_test() -> None:
    data = dataset(rows=30)
    data["colour"][:] = "red"
    keys = (GroupKey("sex", categories=SEXES), GroupKey("colour", categories=COLOURS))
    values = run(make_spec(Statistic.CONTINGENCY, group_by=keys), split(data, 2))
    assert values[:6].sum() > 0 and np.all(np.isnan(values[6:]))


def test_ttest_matches_scipy_welch() -> None:
    data = dataset()
    data["y"] = data["y"] + np.where(data["sex"] == "m", 10.0, 0.0)
    key = GroupKey("sex", categories=SEXES)
    spec = make_spec(Statistic.TTEST, BOUNDS, group_by=(key,))
    values = run(spec, split(data, 3)).reshape(3, 6)
    a, b = (data["sex"] == "f"), (data["sex"] == "m")
    for i, column in enumerate(["x", "y", "z"]):
        xs = np.clip(data[column], *BOUNDS[column])
        result = scipy_stats.ttest_ind(xs[a], xs[b], equal_var=False)
        np.testing.assert_allclose(
            values[i, 0:3],
            [xs[a].mean(), xs[b].mean(), xs[a].mean() - xs[b].mean()],
            rtol=1e-6,
            atol=1e-6,
        )
        np.testing.assert_allclose(values[i, 3], result.statistic, rtol=1e-5)
        np.testing.assert_allclose(values[i, 4], result.df, rtol=1e-5)
        np.testing.assert_allclose(values[i, 5], result.pvalue, rtol=1e-4, atol=1e-12)
    assert values[1, 5] < 1e-3
    layout = definition(spec.statistic).layout(spec)  # type: ignore[misc]
    assert layout.columns[:2] == ["mean f", "mean m"] and layout.index == [("x",), ("y",), ("z",)]


def test_ttest_binned_key_and_small_group() -> None:
    data = dataset(rows=60)
    key = GroupKey("z", edges=(-1.0, 2.9999, 3.0))  # only clamped rows reach the last bin
    data["z"][:] = 0.0
    data["z"][5] = 10.0  # one row in the second group
    spec = make_spec(Statistic.TTEST, {"x": BOUNDS["x"]}, group_by=(key,))
    values = run(spec, split(data, 2))
    assert np.isfinite(values[0]) and np.isfinite(values[1])
    assert np.all(np.isnan(values[3:]))


@pytest.mark.parametrize("edges", [np.linspace(-5, 5, 201), np.linspace(-5, 5, 11)])
def test_quantiles_within_bin_width_of_numpy(edges: np.ndarray) -> None:
    data = dataset(rows=1000)
    probabilities = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
    spec = make_spec(
        Statistic.QUANTILE,
        {"x": (float(edges[0]), float(edges[-1]))},
        bin_edges=tuple(edges),
        quantiles=probabilities,
    )
    values = run(spec, split(data, 3)).reshape(-1, 2)
    truth = np.quantile(np.clip(data["x"], -5, 5), probabilities)
    width = edges[1] - edges[0]
    np.testing.assert_allclose(values[:, 1], width)
    assert np.all(np.abs(values[:, 0] - truth) <= values[:, 1] + 1e-9)


def test_grouped_median_and_empty_group() -> None:
    data = dataset(rows=500)
    key = GroupKey("sex", categories=(*SEXES, "none"))
    edges = tuple(np.linspace(0, 100, 401))
    spec = make_spec(
        Statistic.QUANTILE, {"y": (0.0, 100.0)}, bin_edges=edges, quantiles=(0.5,), group_by=(key,)
    )
    values = run(spec, split(data, 3)).reshape(3, 2)
    for g, sex in enumerate(SEXES):
        truth = np.median(np.clip(data["y"][data["sex"] == sex], 0, 100))
        assert abs(values[g, 0] - truth) <= values[g, 1]
    assert np.all(np.isnan(values[2]))
    layout = definition(spec.statistic).layout(spec)  # type: ignore[misc]
    assert layout.index == [("f", "0.5"), ("m", "0.5"), ("none", "0.5")]


def test_quantile_with_uneven_bins_reports_the_widest_bin_involved() -> None:
    rows = {"x": np.array([0.5, 0.6, 9.0, 9.5])}
    spec = make_spec(
        Statistic.QUANTILE,
        {"x": (0.0, 10.0)},
        bin_edges=(0.0, 1.0, 8.0, 10.0),
        quantiles=(0.5, 0.1),
    )
    values = run(spec, [rows, {"x": np.zeros(0)}]).reshape(2, 2)
    truth = np.quantile(rows["x"], [0.5, 0.1])
    assert np.all(np.abs(values[:, 0] - truth) <= values[:, 1])
    assert values[1, 1] == 1.0  # both order statistics in the first bin


@pytest.mark.parametrize(
    "statistic",
    [
        Statistic.COVARIANCE,
        Statistic.CORRELATION,
        Statistic.TTEST,
        Statistic.QUANTILE,
        Statistic.CONTINGENCY,
    ],
)
def test_finish_never_raises_on_any_revealed_vector(statistic: Statistic) -> None:
    kwargs: dict[str, object] = {}
    bounds: dict[str, tuple[float, float]] | None = {"x": (-5.0, 5.0), "y": (0.0, 1.0)}
    if statistic is Statistic.QUANTILE:
        bounds = {"x": (-5.0, 5.0)}
        kwargs = {"bin_edges": tuple(np.linspace(-5, 5, 21)), "quantiles": (0.5, 0.9)}
    if statistic is Statistic.TTEST:
        kwargs = {"group_by": (GroupKey("s", categories=("a", "b")),)}
    if statistic is Statistic.CONTINGENCY:
        bounds = None
        kwargs = {
            "group_by": (GroupKey("s", categories=("a", "b")), GroupKey("t", categories=("c", "d")))
        }
    rng = np.random.default_rng(3)
    for epsilon in (None, 1.0):
        spec = make_spec(statistic, bounds, epsilon=epsilon, **kwargs)
        stat = definition(statistic)
        length = stat.output_length(spec)
        size = stat.layout(spec).size  # type: ignore[misc]
        for vector in (
            np.zeros(length),
            np.full(length, np.nan),
            rng.normal(0, 1e6, length),
            -np.abs(rng.normal(0, 5, length)),
        ):
            assert stat.finish(spec, vector).shape == (size,)
        assert len(stat.labels(spec)) == size


def test_headroom_components_refuse_what_could_wrap() -> None:
    spec = make_spec(Statistic.COVARIANCE, {"x": (-1e9, 1e9), "y": (0.0, 1.0)}, max_rows=10**6)
    components = definition(spec.statistic).components(spec)
    assert {c.per_row for c in components} >= {1e9, 1e18, 1e9 * 0.5, 1.0}
    with pytest.raises(QueryError):
        check_headroom(components, spec.total_max_rows, spec.frac_bits)
    small = make_spec(Statistic.COVARIANCE, BOUNDS)
    check_headroom(definition(small.statistic).components(small), small.total_max_rows, 16)


def test_every_entry_respects_its_component_bound() -> None:
    """One extreme row reaches, and never exceeds, the largest component bound."""
    data = dataset(rows=1)
    data["x"][:] = 1e6
    data["y"][:] = -1e6
    data["sex"][:] = "f"
    for statistic, kwargs in (
        (Statistic.COVARIANCE, {}),
        (Statistic.TTEST, {"group_by": (GroupKey("sex", categories=SEXES),)}),
    ):
        spec = make_spec(statistic, BOUNDS, **kwargs)
        decoded = reveal(spec, [data])
        largest = max(c.per_row for c in definition(statistic).components(spec))
        assert largest == 50.0 * 50.0
        assert float(np.max(np.abs(decoded))) == largest


def test_tolerances_cover_the_fixed_point_error() -> None:
    from mpc.stats.analyses.tolerance import analysis_tolerances

    data = dataset(rows=400, seed=7)
    key = GroupKey("sex", categories=SEXES)
    for statistic, kwargs in (
        (Statistic.COVARIANCE, {"group_by": (key,)}),
        (Statistic.TTEST, {"group_by": (key,)}),
        (Statistic.CORRELATION, {}),
    ):
        coarse = make_spec(statistic, BOUNDS, frac_bits=3, **kwargs)
        fine = make_spec(statistic, BOUNDS, frac_bits=40, **kwargs)
        tolerances = analysis_tolerances(coarse)
        assert tolerances is not None
        assert len(tolerances) == len(definition(statistic).labels(coarse))
        error = np.abs(run(coarse, split(data, 3)) - run(fine, split(data, 3)))
        stated = np.isfinite(tolerances)
        assert stated.any()
        assert np.all(error[stated] <= np.asarray(tolerances)[stated] + 1e-9)
    keys = (key, GroupKey("colour", categories=COLOURS))
    assert analysis_tolerances(make_spec(Statistic.CONTINGENCY, group_by=keys)) == (0.0,) * 9
    assert analysis_tolerances(make_spec(Statistic.MEAN, BOUNDS)) is None
