"""Robustness as survival (labutils.robustness.survival): time to failure against closed forms, AFT fits.

A linear binary classifier with logits ``[m, -m]``, ``m = w.x + b``, is flipped by a change of
``|m| / ||w||_1`` in Linf and ``|m| / ||w||_2`` in L2, and FGSM / FGM move exactly along the
worst direction, so the first budget of a ladder that flips an image is known in closed form.
The images are built around 0.5 so that clipping to [0, 1] never binds.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from labutils.attacks import pgd
from labutils.robustness import survival as sv

D = 16  # 1 x 4 x 4 images


@pytest.fixture(autouse=True)
def _tiny_models_on_one_thread(single_thread):
    """Tiny models: two OpenMP threads on a 2-core machine would mostly wait for each other."""
    yield


class LinearBinary(nn.Module):
    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.lin = nn.Linear(w.numel(), 1).double()
        with torch.no_grad():
            self.lin.weight.copy_(w.view(1, -1))
            self.lin.bias.fill_(b)

    def forward(self, x):
        m = self.lin(x.flatten(1))
        return torch.cat([m, -m], 1)


@pytest.fixture(scope="module")
def linear_case():
    """Model, images (N, 1, 4, 4) float64, labels (= predictions), margins m and ||w||_1, ||w||_2."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    model = LinearBinary(w, b=-0.5 * float(w.sum()))  # m = w.(x - 0.5)
    n = 60
    d_inf = torch.linspace(0.001, 0.08, n, dtype=torch.float64)  # exact Linf flip distances
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()
    m = sign * d_inf * w.abs().sum()
    # x = 0.5 + m w / ||w||^2 + noise orthogonal to w: the margin is exactly m
    noise = 0.05 * (2 * torch.rand(n, D, generator=g, dtype=torch.float64) - 1)
    noise -= (noise @ w)[:, None] * w / (w @ w)
    x = (0.5 + m[:, None] * w / (w @ w) + noise).view(n, 1, 4, 4)
    assert 0.2 < float(x.min()) and float(x.max()) < 0.8  # far from the clipping even after 0.1 Linf / 0.3 L2
    y = (m < 0).long()  # class 0 iff m > 0
    return model, x, y, m, float(w.abs().sum()), float(w.norm())


def _expected(dist: np.ndarray, ladder: np.ndarray):
    """First ladder budget above each exact distance (NaN: none), and which images are far from a budget."""
    pos = np.searchsorted(ladder, dist, side="right")
    first = np.where(pos < len(ladder), ladder[np.minimum(pos, len(ladder) - 1)], np.nan)
    clear = np.abs(dist[:, None] - ladder[None, :]).min(1) > 1e-7
    return first, clear


@pytest.mark.parametrize("attack,norm", [("fgsm", "linf"), ("pgd", "l2")])
def test_time_to_failure_matches_the_closed_form(linear_case, attack, norm):
    model, x, y, m, w1, w2 = linear_case
    y = y.clone()
    y[[3, 10, 41]] = 1 - y[[3, 10, 41]]  # misclassified already: excluded and counted
    if norm == "linf":
        dist, ladder = (m.abs() / w1).numpy(), np.linspace(0.005, 0.05, 10)
        kw = {}
    else:  # FGM: one L2 step of the full budget, no random start
        dist, ladder = (m.abs() / w2).numpy(), np.linspace(0.02, 0.2, 10)
        kw = {"steps": 1, "alpha_factor": 1.0, "random_start": False}
    out = sv.time_to_failure(model, x, y, ladder, attack=attack, norm=norm, progress=False, **kw)
    assert out.n_misclassified == 3 and out.misclassified.tolist() == [3, 10, 41]
    assert out.index.tolist() == [i for i in range(len(y)) if i not in (3, 10, 41)]
    assert out.duration.dtype == np.float64 and out.event.dtype == bool and out.index.dtype == np.int64
    first, clear = _expected(dist[out.index], ladder)
    assert clear.sum() >= len(clear) - 2
    never = np.isnan(first)
    assert never.any() and (~never).any()  # both events and censoring occur
    assert np.array_equal(out.event[clear], ~never[clear])
    assert np.array_equal(out.duration[clear & ~never], first[clear & ~never])
    assert (out.duration[~out.event] == ladder[-1]).all()  # censored at the top of the ladder
    assert (out.duration[out.event] >= dist[out.index][out.event] - 1e-9).all()  # never below the exact distance
    assert out.n_events + out.n_censored == len(out.index) and out.seconds > 0
    assert (out.attack, out.norm, out.unit) == (attack, norm, "eps")


def test_bisection_refines_to_the_exact_distance(linear_case):
    model, x, y, m, w1, _ = linear_case
    ladder = np.linspace(0.01, 0.05, 5)
    out = sv.time_to_failure(model, x, y, ladder, refine=20, progress=False)
    dist = (m.abs() / w1).numpy()[out.index]
    ev = out.event
    assert ev.sum() > 10
    gap = out.duration[ev] - dist[ev]
    assert (gap >= -1e-9).all() and (gap < 0.01 / 2**20 + 1e-9).all()
    assert (out.duration[~ev] == 0.05).all()


def test_steps_to_failure_matches_the_closed_form(linear_case):
    model, x, y, m, w1, _ = linear_case
    alpha, max_steps = 0.005, 10
    out = sv.steps_to_failure(model, x, y, eps=0.1, max_steps=max_steps, alpha=alpha, progress=False)
    dist = (m.abs() / w1).numpy()[out.index]
    # each Linf step moves the margin by alpha * ||w||_1: the flip comes at step ceil(d / alpha)
    k = np.ceil(dist / alpha)
    clear = np.abs(dist / alpha - np.round(dist / alpha)) > 1e-6
    flips = k <= max_steps
    assert np.array_equal(out.event[clear], flips[clear])
    assert np.array_equal(out.duration[clear & flips], k[clear & flips])
    assert (out.duration[~out.event] == max_steps).all() and (~out.event).any()
    assert out.unit == "steps" and out.budgets.tolist() == list(range(1, max_steps + 1))
    # a budget smaller than an image's distance censors it, whatever the steps
    small = sv.steps_to_failure(model, x, y, eps=0.02, max_steps=max_steps, alpha=alpha, progress=False)
    far = (m.abs() / w1).numpy()[small.index] > 0.02 + 1e-6
    assert not small.event[far].any() and (small.duration[far] == max_steps).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_steps_to_failure_agrees_with_pgd(norm):
    """On a small CNN: flipped at step k means pgd(steps=k) fools it and pgd(steps=k-1) does not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(24, 3, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 5
    eps, alpha, steps = (0.03, 0.005, 8) if norm == "linf" else (0.5, 0.08, 8)
    out = sv.steps_to_failure(model, x, y, eps, steps, norm=norm, alpha=alpha, progress=False)
    assert out.n_misclassified == 2 and out.event.any()
    advs = [x] + [pgd(model, x, y, eps, alpha, k, norm=norm, random_start=False) for k in range(1, steps + 1)]
    with torch.no_grad():  # fooled[k]: misclassified after k steps of pgd (k = 0: clean)
        fooled = torch.stack([model(a).argmax(1) != y for a in advs]).numpy()
    for i, d, e in zip(out.index, out.duration.astype(int), out.event):
        if e:
            assert fooled[d, i] and not fooled[:d, i].any()
        else:
            assert not fooled[:, i].any()


def test_to_frame_broadcasts_covariates(linear_case):
    model, x, y, *_ = linear_case
    out = sv.time_to_failure(model, x, y, [0.01, 0.02], progress=False)
    frame = out.to_frame({"depth": 18, "conf": np.arange(len(out.index), dtype=float)})
    assert list(frame.columns) == ["duration", "event", "depth", "conf"]
    assert (frame["depth"] == 18).all() and frame.index.tolist() == out.index.tolist()
    with pytest.raises(ValueError, match="shape"):
        out.to_frame({"conf": [1.0, 2.0]})


def _weibull_frame(n: int, seed: int, b0=0.5, b1=0.7, sigma=0.5):
    """log T = b0 + b1 x + sigma * (Gumbel-min noise): Weibull AFT; about 20 % right-censored."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = np.exp(b0 + b1 * x + sigma * np.log(rng.exponential(size=n)))
    c = rng.uniform(0.5, 6.0, size=n)
    return pd.DataFrame({"duration": np.minimum(t, c), "event": t <= c, "x": x})


@pytest.fixture(scope="module")
def weibull_fits():
    train, test = _weibull_frame(2000, 0), _weibull_frame(500, 1)
    return sv.fit_aft(train, test_df=test), train


def test_fit_aft_recovers_weibull_coefficients(weibull_fits):
    fits, train = weibull_fits
    assert 0.1 < 1 - train["event"].mean() < 0.35
    w = fits["weibull"]
    b1, se = float(w.params_.loc[("lambda_", "x")]), float(w.standard_errors_.loc[("lambda_", "x")])
    assert abs(b1 - 0.7) < 4 * se
    b0, se0 = float(w.params_.loc[("lambda_", "Intercept")]), float(w.standard_errors_.loc[("lambda_", "Intercept")])
    assert abs(b0 - 0.5) < 4 * se0
    assert abs(math.exp(-float(w.params_.loc[("rho_", "Intercept")])) - 0.5) < 0.05  # sigma = 1 / rho
    af = sv.acceleration_factors(w)
    assert af.index.tolist() == ["x"] and af.loc["x", "effect"] == "slows failure"
    assert af.loc["x", "ci_lower"] < math.exp(0.7) * 1.1 and af.loc["x", "ci_upper"] > math.exp(0.7) / 1.1
    assert af.loc["x", "time_ratio"] == pytest.approx(math.exp(b1)) and af.attrs["ci"] == pytest.approx(0.95)
    assert {"Intercept", "x"} == set(sv.acceleration_factors(fits["lognormal"], include_intercept=True).index)
    assert sv.expected_time_to_failure(w, train) > 0


def test_compare_aft_ranks_weibull_first(weibull_fits):
    fits, _ = weibull_fits
    table = sv.compare_aft(fits)
    assert table.index[0] == "weibull" and set(table.index) == {"weibull", "lognormal", "loglogistic"}
    for name, row in table.iterrows():
        k, n, ll = row["k"], row["n"], row["log_likelihood"]
        assert k == 3 and n == 2000 and ll == pytest.approx(fits[name].log_likelihood_)
        assert row["BIC"] == pytest.approx(-2 * ll + k * math.log(n))
        assert row["AIC"] == pytest.approx(fits[name].AIC_)
        assert 0.5 < row["concordance"] <= 1 and 0.5 < row["test_concordance"] <= 1
    assert table["delta_AIC"].iloc[0] == 0 and (table["delta_AIC"] >= 0).all()
    assert table.loc["weibull", "test_log_likelihood"] == table["test_log_likelihood"].max()


def test_fit_aft_rejects_bad_frames():
    df = _weibull_frame(50, 2)
    bad = df.copy()
    bad.loc[[4, 7], "duration"] = [0.0, -1.0]
    bad.loc[9, "duration"] = np.nan
    with pytest.raises(ValueError, match=r"rows \[4, 7, 9\].*> 0|> 0.*rows \[4, 7, 9\]"):
        sv.fit_aft(bad, models=("weibull",))
    with pytest.raises(ValueError, match="'depth'"):
        sv.fit_aft(df.assign(depth=18), models=("weibull",))
    with pytest.raises(ValueError, match="no observed failure"):
        sv.fit_aft(df.assign(event=False), models=("weibull",))
    with pytest.raises(ValueError, match="Unknown AFT model"):
        sv.fit_aft(df, models=("cox",))
    with pytest.raises(TypeError, match="not numeric"):
        sv.fit_aft(df.assign(kind="resnet"), models=("weibull",))
    with pytest.raises(ValueError, match="test_df"):
        sv.fit_aft(df, models=("weibull",), test_df=bad)


def test_bad_ladders_and_arguments(linear_case):
    model, x, y, *_ = linear_case
    for budgets, msg in [([], "empty"), ([0.0, 0.01], "> 0"), ([0.02, 0.01], "increasing"),
                         ([0.01, 0.01], "increasing"), ([0.01, float("nan")], "> 0"), ([0.5, 2.0], "budget")]:
        with pytest.raises(ValueError, match=msg):
            sv.time_to_failure(model, x, y, budgets, progress=False)
    with pytest.raises(ValueError, match="Linf"):
        sv.time_to_failure(model, x, y, [0.1], attack="fgsm", norm="l2", progress=False)
    with pytest.raises(ValueError, match="Unknown attack"):
        sv.time_to_failure(model, x, y, [0.1], attack="cw", progress=False)
    with pytest.raises(ValueError, match="eps must be > 0"):
        sv.steps_to_failure(model, x, y, 0.0, 5, progress=False)
    with pytest.raises(ValueError, match="max_steps"):
        sv.steps_to_failure(model, x, y, 0.1, 0, progress=False)


def test_cost_normalised_robustness():
    assert sv.cost_normalised_robustness(0.02, 0.01) == pytest.approx(2.0)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="> 0"):
            sv.cost_normalised_robustness(bad, 1.0)
        with pytest.raises(ValueError, match="> 0"):
            sv.cost_normalised_robustness(1.0, bad)
    with pytest.raises(TypeError):
        sv.cost_normalised_robustness(True, 1.0)


def test_lifelines_and_pandas_are_imported_only_when_needed(monkeypatch):
    import ast
    import sys

    tree = ast.parse(open(sv.__file__).read())
    top = {a.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top & {"lifelines", "pandas"}  # `import labutils.robustness` works without them
    monkeypatch.setitem(sys.modules, "lifelines", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"'lifelines'.*make setup"):
        sv.fit_aft(_weibull_frame(20, 3))


def test_deepfool_duration_is_the_closed_form_l2_distance(linear_case):
    """On a linear binary model DeepFool's first step lands (1 + overshoot) x the exact L2 distance away."""
    from labutils.robustness import deepfool_to_failure

    model, x, y, m, _, w2 = linear_case
    y = y.clone()
    y[[5, 20]] = 1 - y[[5, 20]]  # misclassified already
    x0, mode = x.clone(), model.training
    model.train()
    dist = (m.abs() / w2).numpy()
    cap = float(np.quantile(dist, 0.7))
    data = deepfool_to_failure(model, x, y, max_norm=cap, overshoot=0.02, batch_size=16, progress=False)
    assert torch.equal(x, x0) and model.training  # input untouched, mode restored
    assert data.n_misclassified == 2 and sorted(data.misclassified.tolist()) == [5, 20]
    assert data.attack == "deepfool" and data.norm == "l2" and data.budgets.tolist() == [cap]
    found = 1.02 * dist[data.index]
    np.testing.assert_allclose(data.duration[data.event], found[data.event], rtol=1e-4)
    # beyond the cap: censored there, never an event
    assert np.array_equal(data.event, found <= cap)
    assert np.all(data.duration[~data.event] == cap) and data.n_censored > 0
    with pytest.raises(ValueError, match="max_norm"):
        deepfool_to_failure(model, x, y, max_norm=0.0, progress=False)
    with pytest.raises(ValueError, match="overshoot"):
        deepfool_to_failure(model, x, y, max_norm=1.0, overshoot=-1, progress=False)


def test_cluster_bootstrap_widens_intervals_of_duplicated_rows():
    """Five copies of every row make lifelines' standard error sqrt(5) too small; resampling whole clusters does not."""
    from labutils.robustness import cluster_bootstrap_time_ratios

    rng = np.random.default_rng(3)
    n = 150
    z = rng.normal(size=n)
    t = np.exp(0.5 + 0.4 * z) * rng.weibull(1.5, n)
    cap = np.quantile(t, 0.9)
    one = pd.DataFrame({"duration": np.minimum(t, cap), "event": t <= cap, "z": z})
    copies = pd.concat([one] * 5, ignore_index=True)
    clusters = np.tile(np.arange(n), 5)
    single = sv.acceleration_factors(sv.fit_aft(one, models=("weibull",))["weibull"])
    boot = cluster_bootstrap_time_ratios(copies, clusters, model="weibull", n_boot=40, seed=0, progress=False)
    assert boot.attrs["clusters"] == n and boot.attrs["failed"] == 0 and boot.attrs["ci"] == 0.95
    row = boot.loc["z"]
    assert row.time_ratio == pytest.approx(single.loc["z", "time_ratio"], rel=1e-4)  # copies: same estimate
    assert row.naive_se == pytest.approx(single.loc["z", "se"] / math.sqrt(5), rel=0.02)
    assert 0.6 < row.se / single.loc["z", "se"] < 1.6  # the bootstrap recovers the one-copy uncertainty
    assert row.ci_lower < math.exp(0.4) < row.ci_upper and row.effect == "slows failure"
    with pytest.raises(ValueError, match="one entry per row"):
        cluster_bootstrap_time_ratios(copies, clusters[:10])
    with pytest.raises(ValueError, match="n_boot"):
        cluster_bootstrap_time_ratios(copies, clusters, n_boot=3)
    with pytest.raises(ValueError, match="two clusters"):
        cluster_bootstrap_time_ratios(copies, np.zeros(len(copies)))
