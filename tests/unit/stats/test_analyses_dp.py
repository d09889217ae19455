"""The analyses with DP: their sensitivity groups hold by brute force (one row added or
removed moves each group by at most its L1 and L2), the post-processing keeps results sane,
and the stated quantile error covers the truth in most noisy runs."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from mpc.protocol.frame import GroupKey
from mpc.protocol.spec import JobSpec, NoiseMode, Statistic
from mpc.ring import decode, ring_sum
from mpc.stats import definition
from mpc.stats.analyses._common import noise_variance
from mpc.stats.analyses.quantile import (
    BRANCH,
    tree_counts,
    tree_depth,
    tree_nodes,
    tree_prefixes,
)
from tests.unit.stats._analyses_fake import (
    add_planned_noise,
    local_vectors,
    make_spec,
    run,
    split,
)

SEXES = ("f", "m")


def extreme_rows(rows: int = 24, seed: int = 5) -> dict[str, np.ndarray]:
    """Rows at, inside and far beyond the bounds, in every cell and bin."""
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-1e9, -3.0, -2.999, 0.0, 1.5, 3.0, 7.0, 1e9]), rows)
    y = rng.choice(np.array([-1e9, 0.0, 0.5, 1.0, 2.0]), rows)
    sex = rng.choice(np.array([*SEXES, "x"]), rows)
    colour = rng.choice(np.array(["r", "g"]), rows)
    return {"x": x, "y": y, "sex": sex, "colour": colour}


def dp_specs(epsilon: float = 1.0, **overrides: object) -> list[JobSpec]:
    bounds = {"x": (-3.0, 3.0), "y": (0.0, 1.0)}
    by_sex = (GroupKey("sex", categories=SEXES),)
    return [
        make_spec(Statistic.COVARIANCE, bounds, epsilon=epsilon, group_by=by_sex, **overrides),
        make_spec(Statistic.CORRELATION, bounds, epsilon=epsilon, **overrides),
        make_spec(
            Statistic.CONTINGENCY,
            epsilon=epsilon,
            group_by=(*by_sex, GroupKey("colour", categories=("r", "g", "b"))),
            **overrides,
        ),
        make_spec(Statistic.TTEST, bounds, epsilon=epsilon, group_by=by_sex, **overrides),
        make_spec(
            Statistic.QUANTILE,
            {"x": (-3.0, 3.0)},
            epsilon=epsilon,
            bin_edges=tuple(np.linspace(-3, 3, 23)),  # 22 bins: padded to 64 leaves
            quantiles=(0.5,),
            group_by=by_sex,
            **overrides,
        ),
    ]


@pytest.mark.parametrize("frac_bits", [0, 7, 16])
@pytest.mark.parametrize("index", range(5))
def test_sensitivity_groups_hold_by_brute_force(index: int, frac_bits: int) -> None:
    spec = dp_specs(frac_bits=frac_bits)[index]
    stat = definition(spec.statistic)
    assert stat.dp_groups is not None
    groups = stat.dp_groups(spec)
    length = stat.output_length(spec)
    # The groups tile the vector and share the whole budget.
    assert groups[0][1] == 0 and groups[-1][2] == length
    assert all(a[2] == b[1] for a, b in itertools.pairwise(groups))
    assert sum((g[5] for g in groups), Fraction(0)) == 1
    data = extreme_rows()
    (full,) = local_vectors(spec, [data])
    worst = {name: [0, 0] for name, *_ in groups}
    for row in range(len(data["x"])):
        without = {c: np.delete(v, row) for c, v in data.items()}
        (vector,) = local_vectors(spec, [without])
        diff = (full - vector).view(np.int64).astype(object)  # exact integers
        for name, start, stop, l2, l1, _ in groups:
            part = diff[start:stop]
            norm_1 = sum(abs(int(d)) for d in part)
            norm_2_sq = sum(int(d) * int(d) for d in part)
            assert norm_1 <= l1, (name, row)
            assert norm_2_sq <= l2 * l2, (name, row)
            worst[name][0] = max(worst[name][0], norm_1)
    # The extreme rows reach a good part of every bound (the bounds are not vacuous), except
    # a bound of one fixed-point step (frac_bits 0, y in [0, 1]), which rounding can hide.
    for name, _, _, _, l1, _ in groups:
        assert l1 <= 1 or worst[name][0] >= l1 / 4, name
    assert sum(l1 > 1 for *_, l1, _ in groups) >= len(groups) // 2


def test_noise_variance_is_the_planned_calibration() -> None:
    spec = dp_specs()[4]
    stat = definition(spec.statistic)
    assert stat.dp_groups is not None
    groups = stat.dp_groups(spec)
    (name, _, _, l2, _, _) = groups[0]
    levels = tree_depth(22) + 1
    assert l2 == math.ceil(math.sqrt(levels) * 2**16)
    variance = noise_variance(spec, name, groups)
    # Central zCDP: sigma^2 = l2^2 / (2 rho), in data units.
    from mpc import dp

    rho = float(dp.rho_for_epsilon(1.0, 1e-6))
    assert variance == pytest.approx(l2 * l2 / (2 * rho) / 4.0**16, rel=1e-3)
    assert math.isnan(
        noise_variance(
            make_spec(Statistic.QUANTILE, {"x": (0, 1)}, bin_edges=(0, 1), quantiles=(0.5,)),
            name,
            groups,
        )
    )
    distributed = dp_specs(noise=NoiseMode.DISTRIBUTED)[4]
    assert noise_variance(distributed, name, groups) >= variance * 0.99


def test_planner_uses_the_analysis_groups() -> None:
    """Once mpc.stats.privacy plans these statistics through dp_groups, its groups are ours."""
    from mpc.stats.privacy import plan_noise

    for spec in dp_specs():
        plan = plan_noise(spec)
        assert plan is not None
        groups = definition(spec.statistic).dp_groups(spec)  # type: ignore[misc]
        assert [(g.name, g.start, g.stop) for g in plan.groups] == [g[:3] for g in groups]


def test_tree_prefixes_are_exact_without_noise() -> None:
    rng = np.random.default_rng(0)
    for bins in (1, 3, 4, 5, 16, 22, 64, 70):
        leaves = rng.integers(0, 9, size=(2, bins))
        nodes = tree_counts(leaves)
        assert nodes.shape == (2, tree_nodes(bins))
        assert nodes[0, 0] == leaves[0].sum()
        for cell in range(2):
            prefixes = tree_prefixes(nodes[cell].astype(float), bins)
            np.testing.assert_array_equal(prefixes, np.concatenate([[0], np.cumsum(leaves[cell])]))
    assert BRANCH ** tree_depth(22) == 64


def test_dp_quantile_error_covers_the_truth_in_most_runs() -> None:
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(20, 8, 3000), rng.uniform(0, 100, 1000)])
    probabilities = (0.1, 0.5, 0.9)
    spec = make_spec(
        Statistic.QUANTILE,
        {"x": (0.0, 100.0)},
        epsilon=0.5,
        bin_edges=tuple(np.linspace(0, 100, 201)),
        quantiles=probabilities,
    )
    stat = definition(spec.statistic)
    groups = stat.dp_groups(spec)  # type: ignore[misc]
    sd = math.sqrt(noise_variance(spec, groups[0][0], groups)) * 2.0**spec.frac_bits
    total = ring_sum(local_vectors(spec, split({"x": x}, 3)))
    truth = np.quantile(np.clip(x, 0, 100), probabilities)
    runs, covered = 200, np.zeros(3)
    errors = []
    for _ in range(runs):
        noise = np.rint(rng.normal(0, sd, total.size)).astype(np.int64)
        noisy = decode(np.add(total, noise.view(np.uint64)), spec.frac_bits)
        values = stat.finish(spec, noisy).reshape(3, 3)
        covered += np.abs(values[:, 0] - truth) <= values[:, 1]
        errors.append(values[:, 1])
        assert np.all(values[:, 2] > 1)  # a rank error in rows
    assert np.all(covered / runs >= 0.9), covered
    # ... and the stated error is informative, not the whole range.
    assert float(np.median(errors)) < 10


def test_dp_covariance_and_correlation_stay_sane() -> None:
    rng = np.random.default_rng(2)
    data = {"x": rng.normal(0, 1, 300), "y": rng.uniform(0, 1, 300)}
    data["y"] = np.clip(0.5 + 0.1 * data["x"] + rng.normal(0, 0.1, 300), 0, 1)
    bounds = {"x": (-3.0, 3.0), "y": (0.0, 1.0)}
    for epsilon in (0.05, 1000.0):
        cov_spec = make_spec(Statistic.COVARIANCE, bounds, epsilon=epsilon)
        corr_spec = make_spec(Statistic.CORRELATION, bounds, epsilon=epsilon)
        for _ in range(20):
            cov = run(cov_spec, split(data, 3), rng).reshape(2, 2)
            corr = run(corr_spec, split(data, 3), rng).reshape(2, 2)
            assert 0 <= cov[0, 0] <= 9 and 0 <= cov[1, 1] <= 0.25
            assert abs(cov[0, 1]) <= math.sqrt(cov[0, 0] * cov[1, 1]) + 1e-12
            assert np.all(np.abs(corr[np.isfinite(corr)]) <= 1)
            assert cov[0, 1] == cov[1, 0]
    pooled = np.column_stack([np.clip(data["x"], -3, 3), data["y"]])
    np.testing.assert_allclose(cov, np.cov(pooled, rowvar=False), atol=0.02)
    np.testing.assert_allclose(corr, np.corrcoef(pooled, rowvar=False), atol=0.1)


def test_dp_contingency_and_ttest_are_post_processed() -> None:
    rng = np.random.default_rng(4)
    rows = 400
    data = {
        "sex": rng.choice(np.array(SEXES), rows),
        "colour": rng.choice(np.array(["r", "g", "b"]), rows),
        "x": rng.normal(0, 1, rows),
        "y": rng.uniform(0, 1, rows),
    }
    contingency, ttest = dp_specs(epsilon=0.5)[2], dp_specs(epsilon=0.5)[3]
    for _ in range(10):
        table = run(contingency, split(data, 3), rng)
        assert np.all(table[:6] >= 0) and np.all(table[:6] == np.rint(table[:6]))
        assert 0 <= table[8] <= 1  # p-value
        result = run(ttest, split(data, 3), rng).reshape(2, 6)
        assert np.all((result[0, :2] >= -3) & (result[0, :2] <= 3))
        assert np.all((result[1, :2] >= 0) & (result[1, :2] <= 1))
        assert np.all((result[:, 5] >= 0) & (result[:, 5] <= 1))


@pytest.mark.parametrize("noise", [NoiseMode.CENTRAL, NoiseMode.DISTRIBUTED])
def test_noise_statement_has_one_entry_per_label(noise: NoiseMode) -> None:
    from mpc.stats.analyses.noise import analysis_noise
    from mpc.stats.privacy import plan_noise

    rng = np.random.default_rng(8)
    data = extreme_rows(200)
    for spec in dp_specs(noise=noise):
        plan = plan_noise(spec)
        assert plan is not None
        stat = definition(spec.statistic)
        vector = ring_sum(local_vectors(spec, split(data, 3)))
        decoded = decode(vector, spec.frac_bits) + rng.normal(0, 1, vector.size)
        released = stat.finish(spec, decoded)
        statement = analysis_noise(spec, plan, decoded, released)
        assert statement is not None
        sigmas, bounds, kinds = statement
        labels = stat.labels(spec)
        assert len(sigmas) == len(bounds) == len(kinds) == len(labels)
        stated = [i for i, kind in enumerate(kinds) if kind]
        assert stated, spec.statistic
        assert all(math.isfinite(sigmas[i]) and bounds[i] >= sigmas[i] for i in stated)


def test_covariance_noise_bound_covers_the_error() -> None:
    from mpc.stats.analyses.noise import analysis_noise
    from mpc.stats.privacy import plan_noise

    rng = np.random.default_rng(9)
    data = {"x": rng.normal(0, 1, 500), "y": rng.uniform(0, 1, 500)}
    spec = make_spec(Statistic.COVARIANCE, {"x": (-3.0, 3.0), "y": (0.0, 1.0)}, epsilon=2.0)
    plan = plan_noise(spec)
    assert plan is not None
    exact = run(make_spec(Statistic.COVARIANCE, {"x": (-3.0, 3.0), "y": (0.0, 1.0)}), [data])
    misses = 0
    for _ in range(100):
        noisy = run(spec, [data], rng)
        total = ring_sum(local_vectors(spec, [data]))
        _, bounds, _ = analysis_noise(spec, plan, decode(total, spec.frac_bits), noisy)  # type: ignore[misc]
        misses += int(np.any(np.abs(noisy - exact) > np.asarray(bounds)))
    assert misses <= 15


MIXED = {"age": (0.0, 120.0), "score": (-10.0, 10.0)}


def mixed_rows(rows: int = 291, seed: int = 12) -> dict[str, np.ndarray]:
    """Columns of very different ranges, as in the integration test's trial data."""
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 20, rows)
    score = 0.08 * age + rng.normal(0, 2, rows)
    return {"age": age, "score": score, "sex": rng.choice(np.array(SEXES), rows)}


def test_moment_groups_are_one_per_entry_type_with_its_own_bound() -> None:
    spec = make_spec(
        Statistic.COVARIANCE, MIXED, epsilon=5.0, group_by=(GroupKey("sex", categories=SEXES),)
    )
    groups = definition(spec.statistic).dp_groups(spec)  # type: ignore[misc]
    scale = 2**spec.frac_bits
    expected = [
        ("centred sum 'age'", 60 * scale, Fraction(1, 6)),
        ("centred sum 'score'", 10 * scale, Fraction(1, 6)),
        ("centred product 'age' x 'age'", 3600 * scale, Fraction(1, 9)),
        ("centred product 'age' x 'score'", 600 * scale, Fraction(1, 9)),
        ("centred product 'score' x 'score'", 100 * scale, Fraction(1, 9)),
        ("count", scale, Fraction(1, 3)),
    ]
    assert [(name, l2, share) for name, _, _, l2, _, share in groups] == expected
    # One range of the two cells each, term-major; L1 = L2 = the entry's own bound.
    assert [(start, stop) for _, start, stop, *_ in groups] == [
        (2 * i, 2 * i + 2) for i in range(6)
    ]
    assert all(l1 == l2 for _, _, _, l2, l1, _ in groups)


def test_dp_correlation_of_mixed_ranges_is_finite() -> None:
    """Regression (CI: [[1, nan], [nan, nan]] at epsilon 5 over 291 rows): one noise group
    for all products sized the score's variance noise to the age's square bound (36x too
    large), its noisy variance was clamped to 0 and the correlation came back NaN."""
    rng = np.random.default_rng(13)
    data = mixed_rows()
    spec = make_spec(Statistic.CORRELATION, MIXED, epsilon=5.0)
    age, score = np.clip(data["age"], 0, 120), np.clip(data["score"], -10, 10)
    truth = float(np.corrcoef(age, score)[0, 1])
    errors = []
    for _ in range(50):
        corr = run(spec, split(data, 3), rng).reshape(2, 2)
        assert np.all(np.isfinite(corr)), corr
        np.testing.assert_array_equal(np.diag(corr), [1.0, 1.0])
        assert corr[0, 1] == corr[1, 0] and abs(corr[0, 1]) <= 1
        errors.append(abs(corr[0, 1] - truth))
    # About 0.64; the noise at epsilon 5 over 291 rows moves it by about 0.1.
    assert float(np.median(errors)) < 0.25, (truth, np.median(errors))


def test_dp_covariance_and_ttest_bounds_of_mixed_ranges_cover_the_truth() -> None:
    from mpc.stats.analyses.noise import analysis_noise
    from mpc.stats.privacy import plan_noise

    rng = np.random.default_rng(14)
    data = mixed_rows()
    by_sex = (GroupKey("sex", categories=SEXES),)
    for statistic, fields in ((Statistic.COVARIANCE, {}), (Statistic.TTEST, {"group_by": by_sex})):
        spec = make_spec(statistic, MIXED, epsilon=5.0, **fields)
        plan = plan_noise(spec)
        assert plan is not None
        truth = run(make_spec(statistic, MIXED, **fields), split(data, 3))
        stat = definition(statistic)
        total = ring_sum(local_vectors(spec, split(data, 3)))
        misses = np.zeros(truth.size)
        runs, released = 60, []
        for _ in range(runs):
            decoded = decode(add_planned_noise(spec, total, rng), spec.frac_bits)
            noisy = stat.finish(spec, decoded)
            statement = analysis_noise(spec, plan, decoded, noisy)
            assert statement is not None
            sigmas, bounds, kinds = (np.asarray(x) for x in statement)
            stated = np.asarray([bool(k) for k in kinds])
            released.append(noisy)
            misses += stated & (np.abs(noisy - truth) > bounds)
        assert np.any(stated)
        assert np.all(misses[stated] <= 0.1 * runs), (statistic, misses)
        if statistic is Statistic.COVARIANCE:
            # The score's variance (about 6.6) gets noise on its own scale, not the age's (a
            # shared group put a sigma of about 23 on it), and the stated sigma is the noise's.
            spread = float(np.std([values[3] for values in released]))
            assert sigmas[3] < 0.3 * truth[3] and bounds[3] < 2 * truth[3], (sigmas, truth)
            assert 0.5 * sigmas[3] < spread < 2 * sigmas[3], (spread, sigmas)
