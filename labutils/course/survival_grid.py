"""Notebook 09's experiment: models x defences x attacks, each cell measuring per-image time to failure.

A *model spec* (:func:`model_specs`) is one trained model and its defence: the architecture, its
training recipe (standard, Gaussian noise augmentation or adversarial training) and optionally
feature squeezing at inference.  A *cell* (:func:`survival_cells`) is a spec and an attack; its
parameters are plain JSON, so :func:`labutils.course.grid.run_grid` can store, resume and send it to
any joblib backend.  :func:`survival_cell` loads the cell's model from the checkpoint cache (train
them first, serially, with :func:`train_models`), measures every image's time to failure and
returns one row per image with the cell's whole-attack figures (accuracy, attack seconds,
successes, training and prediction time, depth and parameters) repeated on each row.

Attacks (each on the ``[0, 1]`` pixel scale): ``"fgsm"`` and ``"pgd_linf"`` on an Linf ladder,
``"pgd_l2"`` on an L2 ladder, ``"deepfool"`` (the L2 size of its perturbation, censored at the L2
ladder's top) and ``"pgd_steps"`` (PGD Linf steps to failure at a fixed budget).
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import torch

from ..data import load, subset, to_float
from ..models import count_parameters
from ..robustness import FeatureSqueezing, deepfool_to_failure, steps_to_failure, time_to_failure
from ..runtime import frozen_eval
from ..training import TrainConfig, get_or_train

__all__ = ["ATTACKS", "DEFENCES", "model_specs", "train_models", "survival_cells", "survival_cell", "seconds_per_gradient",
           "scaled_strengths", "aft_frame", "median_survival"]

ATTACKS = ("fgsm", "pgd_linf", "pgd_l2", "deepfool", "pgd_steps")
DEFENCES = ("noise", "adversarial", "squeeze")
# the defence behind each training mode; its strength is the mode's own setting
_TRAIN_DEFENCE = {"standard": "none", "gaussian": "noise", "fgsm": "adversarial", "fast_fgsm": "adversarial",
                  "pgd": "adversarial", "free": "adversarial"}


def _depth(arch: str, kwargs: Mapping) -> int:
    if arch == "resnet":
        return int(kwargs.get("depth", 20))
    if "depth" in kwargs:
        return int(kwargs["depth"])
    raise ValueError(f"model spec for {arch!r} needs a 'depth' (weight layers): only the ResNets carry their own.")


def model_specs(arch: str, depths: Sequence[int], configs: Mapping[str, TrainConfig], *, width: int = 16,
                squeeze_bits: Sequence[int] = (), extra: Mapping[str, tuple] | None = None) -> list[dict]:
    """The grid's models: each depth of ``arch`` trained with each recipe, plus squeezed standard models.

    Args:
        arch: registry name (``"resnet"``: :class:`~labutils.models.CifarResNet`, ``depth`` and ``width``).
        depths: the depths to train.  configs: ``{recipe name: TrainConfig}``; the recipe's mode sets
            the defence (``standard``: none, ``gaussian``: noise with strength ``noise_sigma``,
            adversarial modes: adversarial with strength ``eps * 255``).
        squeeze_bits: bit depths of feature squeezing (strength ``8 - bits``), each applied at
            inference to the model of recipe ``"standard"`` at every depth.
        extra: other models, ``{name: (arch, model_kwargs, TrainConfig, depth)}`` (e.g. notebook 04's FastNet).

    Returns a list of JSON-ready dicts: ``name``, ``arch``, ``model_kwargs``, ``config`` (``TrainConfig.to_dict()``),
    ``depth``, ``defence``, ``defence_strength``, ``squeeze_bits`` (None or the bits).
    """
    specs = []

    def add(name, arch_, kwargs, cfg, depth, bits=None):
        defence = _TRAIN_DEFENCE.get(cfg.mode)
        if defence is None:
            raise ValueError(f"recipe {name!r} has mode {cfg.mode!r}; the grid knows {sorted(_TRAIN_DEFENCE)}.")
        strength = {"none": 0.0, "noise": cfg.noise_sigma, "adversarial": cfg.eps * 255}[defence]
        if bits is not None:
            defence, strength = "squeeze", float(8 - bits)
        specs.append({"name": name, "arch": arch_, "model_kwargs": dict(kwargs), "config": cfg.to_dict(),
                      "depth": int(depth), "defence": defence, "defence_strength": float(strength),
                      "squeeze_bits": bits})

    for depth in depths:
        kwargs = {"depth": int(depth), "width": int(width)} if arch == "resnet" else {"depth": int(depth)}
        for recipe, cfg in configs.items():
            add(f"{arch}{depth}-{recipe}", arch, kwargs, cfg, depth)
        for bits in squeeze_bits:
            if "standard" not in configs:
                raise ValueError("squeeze_bits needs a 'standard' recipe to squeeze.")
            add(f"{arch}{depth}-squeeze{bits}", arch, kwargs, configs["standard"], depth, bits)
    for name, (arch_, kwargs, cfg, depth) in (extra or {}).items():
        add(name, arch_, kwargs, cfg, depth)
    return specs


def _load(spec: Mapping, progress: bool = False):
    """The spec's trained model (trained now if the cache lacks it) and its cache info."""
    return get_or_train(spec["arch"], TrainConfig(**spec["config"]), model_kwargs=spec["model_kwargs"],
                        progress=progress)


def train_models(specs: Sequence[Mapping], *, progress: bool = True):
    """Train (or load) every distinct model of ``specs`` once, in order; a pandas DataFrame of what it cost.

    Columns: ``model`` (the spec's name; a squeezed copy shares its standard model's), ``train_seconds``
    (as measured when it was trained, also for cached models), ``samples`` (training images seen: passes over
    the data x images), ``train_seconds_per_sample`` and ``cached``.
    """
    import pandas as pd

    n_train = int(load("cifar10", "train")[1].shape[0])
    rows, seen = [], set()
    for spec in specs:
        key = _model_key(spec)
        if key in seen:
            continue
        seen.add(key)
        _, info = _load(spec, progress=progress)
        cfg = TrainConfig(**spec["config"])
        samples = cfg.data_epochs() * min(cfg.train_size or n_train, n_train)
        rows.append({"model": key, "train_seconds": float(info["train_seconds"]), "samples": samples,
                     "train_seconds_per_sample": float(info["train_seconds"]) / samples, "cached": bool(info["cached"])})
    return pd.DataFrame(rows)


def _model_key(spec: Mapping) -> str:
    return spec["name"] if spec["squeeze_bits"] is None else spec["name"].rsplit("-squeeze", 1)[0] + "-standard"


def survival_cells(specs: Sequence[Mapping], attacks: Mapping[str, Mapping], *, n_images: int,
                   data_seed: int = 0, precision: str = "fp32") -> list[dict]:
    """One cell per (model spec, attack): the JSON parameters :func:`survival_cell` takes.

    ``attacks`` maps an attack of :data:`ATTACKS` to its settings: ``budgets`` (fgsm, pgd_linf, pgd_l2),
    ``steps`` (PGD steps per budget; DeepFool's iterations), ``eps`` and ``max_steps`` (pgd_steps),
    ``max_norm`` (deepfool).  Every cell attacks the same ``n_images`` test images (a fixed shuffle, ``data_seed``).
    ``precision``: the precision the models train in (``Profile.precision``), part of a cell's identity only, so that a
    stored result of an fp32 run is not reused for a bf16 one.
    """
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}: use {list(ATTACKS)}.")
    return [{**{k: spec[k] for k in ("name", "arch", "model_kwargs", "config", "depth", "defence",
                                     "defence_strength", "squeeze_bits")},
             "attack": attack, "attack_settings": dict(settings), "n_images": int(n_images), "data_seed": int(data_seed),
             "precision": str(precision)}
            for spec in specs for attack, settings in attacks.items()]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 3) -> float:
    """Wall-clock seconds of one input gradient (forward + backward) per image: the cost of one PGD step.

    ``x``: float images ``(N, C, H, W)`` in ``[0, 1]`` on the model's device, ``y`` their labels; the fastest of
    ``repeats`` timings over the batch, divided by N (the grid times 64 images, its attacks run 256 at a time).
    """
    best = math.inf
    with frozen_eval(model):
        for _ in range(repeats):
            xg = x.detach().clone().requires_grad_(True)
            _sync(x.device)
            t0 = time.perf_counter()
            torch.nn.functional.cross_entropy(model(xg), y).backward()
            _sync(x.device)
            best = min(best, time.perf_counter() - t0)
    return best / x.shape[0]


def survival_cell(params: Mapping) -> list[dict]:
    """Measure one cell of :func:`survival_cells`; one row per attacked image that was classified correctly.

    Row fields: ``image`` (index among the cell's test images), ``duration`` (the budget that first
    flipped it: ``eps``, an L2 radius or PGD steps), ``event`` (1: flipped, 0: censored at the largest
    budget), ``budget_max`` (that largest budget), and per cell: ``clean_accuracy`` (on all
    ``n_images``), ``adv_accuracy`` (surviving the largest budget, over all ``n_images``), ``n_events``,
    ``attack_seconds`` (the whole measurement), ``predict_seconds`` (per image, clean forward pass),
    ``gradient_seconds`` (one PGD step per image), ``train_seconds`` (of the whole training run), ``model``
    (the trained model's key, as in :func:`train_models`'s table: merge it for the cost per sample), ``params``.
    """
    spec, settings = params, params["attack_settings"]
    model, info = _load(spec)
    if spec["squeeze_bits"] is not None:
        model = FeatureSqueezing(model, int(spec["squeeze_bits"]))
    images, labels = subset(*load("cifar10", "test"), int(spec["n_images"]), seed=int(spec["data_seed"]))
    device = next(model.parameters()).device
    x = to_float(images, device)
    attack = spec["attack"]
    if attack in ("fgsm", "pgd_linf", "pgd_l2"):
        kind, norm = ("fgsm", "linf") if attack == "fgsm" else ("pgd", attack.split("_")[1])
        data = time_to_failure(model, x, labels, settings["budgets"], attack=kind, norm=norm,
                               steps=int(settings.get("steps", 10)), progress=False)
    elif attack == "deepfool":
        data = deepfool_to_failure(model, x, labels, max_norm=float(settings["max_norm"]),
                                   steps=int(settings.get("steps", 50)), progress=False)
    elif attack == "pgd_steps":
        data = steps_to_failure(model, x, labels, float(settings["eps"]), int(settings["max_steps"]),
                                alpha=settings.get("alpha"), progress=False)
    else:
        raise ValueError(f"unknown attack {attack!r}: use {list(ATTACKS)}.")
    n = x.shape[0]
    with torch.no_grad(), frozen_eval(model):
        _sync(device)
        t0 = time.perf_counter()
        model(x[:256])
        _sync(device)
        predict = (time.perf_counter() - t0) / min(n, 256)
    cell = {"budget_max": float(data.budgets[-1]), "clean_accuracy": data.event.size / n,
            "adv_accuracy": data.n_censored / n, "n_events": data.n_events, "attack_seconds": data.seconds,
            "predict_seconds": predict,
            "gradient_seconds": seconds_per_gradient(model, x[:64], labels[:64].to(device)),
            "train_seconds": float(info["train_seconds"]), "model": _model_key(spec),
            "params": count_parameters(model)}
    return [{"image": int(i), "duration": float(d), "event": int(e), **cell}
            for i, d, e in zip(data.index, data.duration, data.event)]


def scaled_strengths(table):
    """A copy of a grid table with ``attack_strength`` and ``defence_strength_scaled`` in ``[0, 1]``.

    Min-max scaled within each type, each type's minimum being "none": ``attack_strength`` is the budget that
    broke the image divided by its attack's largest budget (0 would be the clean image), ``defence_strength_scaled``
    the defence's strength divided by the largest of its type in the table (0 for undefended models).
    """
    out = table.copy()
    out["attack_strength"] = out["duration"] / out["budget_max"]
    top = out.groupby("defence")["defence_strength"].transform("max")
    out["defence_strength_scaled"] = (out["defence_strength"] / top.where(top > 0, 1.0)).astype(float)
    return out


def aft_frame(table, *, attacks: Sequence[str] | None = None, scale: bool = True):
    """Per-image rows of a grid table, ready for :func:`labutils.robustness.fit_aft`.

    Columns: ``duration`` (with ``scale``: :func:`scaled_strengths`' ``attack_strength``, in ``(0, 1]`` for every
    attack; else in the attack's own unit), ``event`` (bool), ``depth`` (weight layers), one column per defence
    type present (``defence_strength_scaled`` for that type's models, 0 for the others), one indicator per
    attack present but the first of :data:`ATTACKS` (the baseline) and one per architecture but the most
    frequent (e.g. ``fastnet`` beside the ResNets: otherwise it would share the covariates of a ResNet of its depth).  The index is ``"<cell>/<image>"``.

    Args:
        table: :class:`~labutils.course.grid.GridResult`'s ``table`` of :func:`survival_cell` rows.
        attacks: keep only these attacks (default: all in the table).
    """
    import pandas as pd

    t = table if attacks is None else table[table["attack"].isin(list(attacks))]
    if len(t) == 0:
        raise ValueError(f"no rows for attacks {attacks}; the table has {sorted(set(table['attack']))}.")
    t = scaled_strengths(t)
    out = pd.DataFrame({"duration": t["attack_strength"] if scale else t["duration"],
                        "event": t["event"].astype(bool), "depth": t["depth"].astype(float)})
    for defence in DEFENCES:
        if (t["defence"] == defence).any():
            out[defence] = t["defence_strength_scaled"].where(t["defence"] == defence, 0.0).astype(float)
    present = [a for a in ATTACKS if a in set(t["attack"])]
    for attack in present[1:]:
        out[attack] = (t["attack"] == attack).astype(float)
    archs = t["arch"].value_counts().index.tolist()  # the most frequent architecture is the baseline
    for arch in archs[1:]:
        out[arch] = (t["arch"] == arch).astype(float)
    out.index = t["cell"].astype(str) + "/" + t["image"].astype(str)
    return out


def median_survival(table, *, by: Sequence[str] = ("name", "attack")):
    """Kaplan-Meier median time to failure per group of a grid table (lifelines), in each attack's unit.

    Returns a DataFrame indexed by ``by``: ``images`` (rows), ``events``, ``median`` (the budget by which half
    the images flipped; ``inf`` where more than half survived the largest budget) and ``budget_max``.
    """
    import pandas as pd
    from lifelines import KaplanMeierFitter

    rows = {}
    for key, g in table.groupby(list(by), sort=False):
        km = KaplanMeierFitter().fit(g["duration"].to_numpy(float), g["event"].to_numpy(bool))
        rows[key] = {"images": len(g), "events": int(g["event"].sum()), "median": float(km.median_survival_time_),
                     "budget_max": float(g["budget_max"].iloc[0])}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = pd.MultiIndex.from_tuples(out.index, names=list(by)) if len(by) > 1 else out.index.rename(by[0])
    return out
