"""Entropy signals of a classifier: predictive entropy, and histogram entropies of internal activations.

The monitoring method (Nazeri & Hafez 2025; ``shared/reference/methods.md``) hooks a few layers,
keeps the **positive** activation values, counts them into a histogram with **fixed bin edges**
and computes ``H = -sum_b P_b log2 P_b`` in bits.  The paper pools a whole batch into one
histogram (one value per batch and layer); this module also measures one histogram per sample.

Both come from the same per-sample counts: the monitor counts each sample's positive values into
the bins (an ``(N, B)`` count matrix, small whatever the layer's size), the per-sample entropy is
the entropy of a row and the batch entropy that of the sum of a group of rows (what flattening the
group's activations into one histogram gives).  Activations themselves are never kept.

Units and conventions used everywhere here:

* entropies are in **bits** (log base 2) unless a function says otherwise; the histogram entropy
  with ``B`` bins lies in ``[0, log2 B]``; the predictive entropy with ``K`` classes in ``[0, log2 K]``;
* edges ``e_0 < e_1 < ... < e_B`` (a 1-D tensor of ``B + 1`` finite, strictly increasing values)
  define ``B`` bins ``[e_b, e_{b+1})``; a positive value below ``e_1`` counts in the first bin and a
  value ``>= e_{B-1}`` in the last one, **including values above the last edge** (nothing is
  dropped, so clean and attacked inputs count the same number of positive values);
* a histogram without any positive value has entropy 0 by definition (nothing to spread);
* higher entropy is *not* a fixed direction of "suspicious": the paper saw it rise under attack
  in the first conv layer and fall in the second fully connected one; :mod:`.thresholds` learns
  the direction.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..data import as_float_images
from ..models import FastNet, SimpleCNN
from ..runtime import frozen_eval, model_device
from .scores import entropy as entropy_nats

__all__ = ["predictive_entropy", "check_edges", "edges_from_values", "histogram_counts", "entropy_from_counts",
           "histogram_entropy", "histogram_entropy_per_sample", "group_entropies", "resolve_layers",
           "default_monitor_layers", "ActivationMonitor", "calibrate_edges", "MonitorReadout", "run_monitor",
           "activation_entropies", "DEFAULT_BINS", "DEFAULT_QUANTILE"]

#: Bins of the fixed histogram (entropy at most log2 64 = 6 bits; the paper's values are ~5.1 bits).
DEFAULT_BINS = 64
#: The last edge is this quantile of the clean calibration activations' positive values.
DEFAULT_QUANTILE = 0.99


def predictive_entropy(logits: torch.Tensor, *, base: float = 2.0) -> torch.Tensor:
    """Entropy of the softmax, ``-sum_k p_k log_base p_k``: ``(N, K) -> (N,)`` float32 on the logits' device.

    ``base=2`` (default) gives **bits**, in ``[0, log2 K]``; ``base=math.e`` gives nats, which is
    :func:`labutils.uncertainty.scores.entropy` (this function divides it by ``ln base``).
    Higher = less confident.
    """
    base = float(base)
    if not (base > 0 and base != 1 and math.isfinite(base)):
        raise ValueError(f"base must be a finite number > 0 and != 1 (2 for bits, math.e for nats), got {base}.")
    return entropy_nats(logits) / math.log(base)


# --------------------------------------------------------------------------- histograms
def check_edges(edges, name: str = "edges") -> torch.Tensor:
    """``edges`` as a float64 CPU tensor after checking it is 1-D, finite, strictly increasing, >= 2 entries."""
    e = torch.as_tensor(edges).detach().to("cpu", torch.float64)
    if e.ndim != 1 or e.numel() < 2:
        raise ValueError(f"{name} must be a 1-D tensor of at least 2 bin edges (B bins need B + 1), "
                         f"got shape {tuple(e.shape)}.")
    if not bool(torch.isfinite(e).all()):
        raise ValueError(f"{name} must be finite, got {e.tolist()[:8]}...")
    if not bool((e[1:] > e[:-1]).all()):
        raise ValueError(f"{name} must be strictly increasing, got {e.tolist()[:8]}...")
    return e


def edges_from_values(values: torch.Tensor, *, bins: int = DEFAULT_BINS,
                      quantile: float = DEFAULT_QUANTILE) -> torch.Tensor:
    """Fixed bin edges ``linspace(0, q, bins + 1)`` with ``q`` the ``quantile`` of the **positive** ``values``.

    Measure ``values`` on clean calibration inputs and use the edges for every input (clean and
    attacked): the paper's fixed bin edges.  Values above ``q`` later count in the last bin.

    Returns:
        float64 CPU tensor ``(bins + 1,)`` from 0 to ``q > 0``.
    """
    bins = int(bins)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}.")
    if not 0 < float(quantile) <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}.")
    v = torch.as_tensor(values).detach().reshape(-1).to("cpu", torch.float64)
    v = v[v > 0]
    if v.numel() == 0:
        raise ValueError("no positive value to place the bin edges on: the layer's activations are all <= 0 "
                         "on these images (pick a layer after a nonlinearity such as ReLU / GELU).")
    high = float(torch.quantile(v, float(quantile))) if v.numel() <= 16_000_000 else float(v.max())
    return torch.linspace(0.0, high, bins + 1, dtype=torch.float64)


def histogram_counts(activations: torch.Tensor, edges) -> torch.Tensor:
    """Per-sample histogram of the positive values: ``(N, ...) -> (N, B)`` float64 counts on ``activations``' device.

    Row ``i`` counts the values ``> 0`` of ``activations[i]`` into the ``B = len(edges) - 1``
    fixed bins (see the module docstring: below ``e_1`` -> first bin, ``>= e_{B-1}`` -> last bin,
    so ``counts[i].sum()`` is the number of positive values).  Vectorised with
    ``torch.bucketize`` and ``scatter_add_``; runs under ``no_grad``.
    """
    e = check_edges(edges)
    if not isinstance(activations, torch.Tensor):
        activations = torch.as_tensor(activations)
    if activations.ndim < 1:
        raise ValueError("activations must have a batch dimension (N, ...).")
    with torch.no_grad():
        a = activations.detach()
        if not a.is_floating_point():
            a = a.double()
        elif a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        a = a.reshape(a.shape[0], -1)
        inner = e[1:-1].to(a.device, a.dtype)
        idx = torch.bucketize(a, inner, right=True)  # number of inner edges <= value: the bin index
        # float32 adds 0/1 exactly up to 2**24 values per sample; float64 beyond
        acc = torch.float32 if a.shape[1] < 2**24 else torch.float64
        counts = torch.zeros(a.shape[0], e.numel() - 1, dtype=acc, device=a.device)
        return counts.scatter_add_(1, idx, (a > 0).to(acc)).to(torch.float64)


def entropy_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits of histograms given by counts: ``(..., B) -> (...)`` float64.

    ``P = counts / counts.sum(-1)``, ``H = -sum_b P_b log2 P_b`` over the non-empty bins; a row with
    no counts has entropy 0.  In ``[0, log2 B]``.
    """
    c = torch.as_tensor(counts).to(torch.float64)
    if c.ndim < 1:
        raise ValueError("counts must have a bin dimension (..., B).")
    if bool((c < 0).any()):
        raise ValueError("counts must be >= 0.")
    total = c.sum(-1, keepdim=True)
    p = c / total.clamp_min(1e-300)
    return -torch.special.xlogy(p, p).sum(-1) / math.log(2)  # xlogy(0, 0) = 0: empty bins add nothing


def histogram_entropy(values: torch.Tensor, edges) -> float:
    """The paper's entropy of **all** positive ``values`` (any shape, flattened) in fixed bins, in bits.

    One histogram over every value (a whole batch's activations of one layer gives one number).
    0 when no value is positive.  In ``[0, log2 B]``, ``B = len(edges) - 1``.
    """
    v = torch.as_tensor(values).reshape(1, -1)
    return float(entropy_from_counts(histogram_counts(v, edges))[0])


def histogram_entropy_per_sample(activations: torch.Tensor, edges) -> torch.Tensor:
    """One :func:`histogram_entropy` per sample: ``(N, ...) -> (N,)`` float64 bits, vectorised."""
    return entropy_from_counts(histogram_counts(activations, edges))


def group_entropies(counts: torch.Tensor, group_size: int) -> torch.Tensor:
    """Batch-level entropies: pool consecutive groups of ``group_size`` samples, ``(N, B) -> (N // group_size,)`` bits.

    The histogram of a group is the sum of its samples' counts, i.e. the histogram of the group's
    flattened activations (the paper's batch entropy).  A last incomplete group is dropped.
    """
    g = int(group_size)
    if g < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}.")
    c = torch.as_tensor(counts)
    m = c.shape[0] // g
    return entropy_from_counts(c[: m * g].reshape(m, g, -1).sum(1))


# --------------------------------------------------------------------------- layers and hooks
def resolve_layers(model: nn.Module, layers: str | Iterable[str]) -> dict[str, nn.Module]:
    """``{name: submodule}`` for the names of ``model.named_modules()``; a clear error for an unknown name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty: name at least one layer, e.g. default_monitor_layers(model).")
    modules = {n: m for n, m in model.named_modules() if n}
    unknown = [n for n in names if n not in modules]
    if unknown:
        valid = list(modules)
        shown = ", ".join(valid[:60]) + (f", ... ({len(valid) - 60} more)" if len(valid) > 60 else "")
        raise ValueError(f"unknown layer name(s) {unknown} in {type(model).__name__}; its layers "
                         f"(model.named_modules()) are: {shown}.")
    if len(set(names)) != len(names):
        raise ValueError(f"layers names a layer twice: {names}.")
    return {n: modules[n] for n in names}


_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.ReLU6, nn.Mish, nn.Softplus, nn.Hardswish)


def default_monitor_layers(model: nn.Module) -> list[str]:
    """The paper's two layers for ``model``: the first conv after its nonlinearity, and the penultimate features.

    * :class:`~labutils.models.SimpleCNN`: ``["net.2", "net.15"]`` (ReLU after the first conv;
      ReLU after the 512-unit fully connected layer, the paper's FC2 analogue);
    * :class:`~labutils.models.FastNet`: ``["features.0", "features.5"]`` (GELU after the frozen
      2x2 whitening conv; the 256 globally max-pooled features the linear head reads);
    * other models: the first and the last activation module (ReLU, GELU, ...) in registration order.
    """
    if isinstance(model, SimpleCNN):
        return ["net.2", "net.15"]
    if isinstance(model, FastNet):
        return ["features.0", "features.5"]
    acts = [n for n, m in model.named_modules() if isinstance(m, _ACTIVATIONS)]
    if not acts:
        raise ValueError(f"{type(model).__name__} has no activation module (ReLU, GELU, ...); name the layers "
                         "to monitor yourself (see model.named_modules()).")
    return [acts[0]] if len(acts) == 1 else [acts[0], acts[-1]]


class ActivationMonitor:
    """Forward hooks on named layers of ``model``, removed when the ``with`` block ends (also on an error).

    ::

        with ActivationMonitor(model, ["net.2", "net.15"], edges=edges) as mon:
            model(x)
        mon.entropies("net.2")  # (N,) bits, one per sample of every forward pass so far

    Args:
        model: any ``nn.Module``; layers are names of ``model.named_modules()`` (an unknown name
            raises ``ValueError`` listing the valid ones).
        layers: one name or a list of names.
        edges: optional ``{layer: edges}`` (each layer of ``layers`` needs one): every forward pass
            appends each sample's histogram counts ``(n, B)`` (float64, CPU) per layer.  Only the
            counts are kept, never the activations.
        callback: optional ``f(name, output)`` called inside the hook with the layer's live output
            (``(n, ...)``, still in the autograd graph, before any later in-place op changes it),
            e.g. to compute a differentiable surrogate or to sample values.

    The hook computes on the output right after the layer runs, so hooking a conv followed by an
    in-place ReLU sees the conv's output, not the ReLU's.
    """

    def __init__(self, model: nn.Module, layers: str | Iterable[str], *, edges: Mapping[str, object] | None = None,
                 callback: Callable[[str, torch.Tensor], None] | None = None):
        self.modules = resolve_layers(model, layers)
        self.layers = list(self.modules)
        self.edges = None
        if edges is not None:
            missing = [n for n in self.layers if n not in edges]
            if missing:
                raise ValueError(f"edges has no bin edges for layer(s) {missing}; it has {list(edges)}.")
            self.edges = {n: check_edges(edges[n], f"edges[{n!r}]") for n in self.layers}
        self.callback = callback
        self._counts: dict[str, list[torch.Tensor]] = {n: [] for n in self.layers}
        self._handles = []
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.remove()
            raise

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} ({type(module).__name__}) returns {type(output).__name__}, "
                                "not a tensor: monitor a layer whose output is one tensor (N, ...).")
            if self.edges is not None:
                self._counts[name].append(histogram_counts(output, self.edges[name]).cpu())
            if self.callback is not None:
                self.callback(name, output)
        return hook

    def remove(self) -> None:
        """Remove every hook (idempotent); the recorded counts stay readable."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> "ActivationMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def reset(self) -> None:
        """Forget the counts recorded so far."""
        self._counts = {n: [] for n in self.layers}

    def counts(self, name: str) -> torch.Tensor:
        """``(N, B)`` float64 counts of layer ``name`` over every sample seen so far, in order."""
        if self.edges is None:
            raise ValueError("this monitor records no counts: pass edges={layer: edges} to record histograms.")
        if name not in self._counts:
            raise ValueError(f"layer {name!r} is not monitored; monitored: {self.layers}.")
        parts = self._counts[name]
        return torch.cat(parts) if parts else torch.zeros(0, self.edges[name].numel() - 1, dtype=torch.float64)

    def entropies(self, name: str) -> torch.Tensor:
        """Per-sample histogram entropies ``(N,)`` in bits of layer ``name`` (float64, CPU)."""
        return entropy_from_counts(self.counts(name))


# --------------------------------------------------------------------------- running a model
def _batches(model: nn.Module, images: torch.Tensor, batch_size: int, device):
    """Yield float [0, 1] batches on the model's device (uint8 converted) with the model in frozen eval."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError("images must be a tensor (N, C, H, W), uint8 0..255 or float in [0, 1].")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    device = torch.device(device) if device is not None else model_device(model)
    for i in range(0, images.shape[0], int(batch_size)):
        yield as_float_images(images[i: i + int(batch_size)], device).float()


@torch.no_grad()
def calibrate_edges(model: nn.Module, images: torch.Tensor, layers: str | Iterable[str], *,
                    bins: int = DEFAULT_BINS, quantile: float = DEFAULT_QUANTILE, batch_size: int = 250,
                    max_values: int = 2_000_000, seed: int = 0,
                    device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Fixed bin edges per layer from clean calibration ``images``: ``{layer: (bins + 1,) float64}``.

    Runs the model (frozen eval, fp32) with hooks on ``layers``, gathers the positive activation
    values (a uniform random sample of at most ``max_values`` per layer, drawn per batch in
    proportion to its size with a generator seeded by ``seed``) and returns
    :func:`edges_from_values` of them: ``linspace(0, quantile of the positives, bins + 1)``.
    Use these edges for clean and attacked inputs alike.
    """
    names = list(resolve_layers(model, layers))
    n = max(1, images.shape[0]) if isinstance(images, torch.Tensor) else 1
    gen = torch.Generator().manual_seed(int(seed))
    pools: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    state = {"share": 1.0}

    def sample(name, out):
        v = out.detach().reshape(-1)
        v = v[v > 0].float().cpu()
        k = min(v.numel(), max(1, int(max_values * state["share"])))
        if k < v.numel():
            v = v[torch.randperm(v.numel(), generator=gen)[:k]]
        pools[name].append(v)

    with ActivationMonitor(model, names, callback=sample), frozen_eval(model):
        for x in _batches(model, images, batch_size, device):
            state["share"] = x.shape[0] / n
            model(x)
    return {k: edges_from_values(torch.cat(pools[k]) if pools[k] else torch.zeros(0), bins=bins, quantile=quantile)
            for k in names}


@dataclass
class MonitorReadout:
    """What one monitored pass over ``N`` images measured.

    Attributes:
        counts: ``{layer: (N, B) float64}`` histogram counts of each sample's positive activations.
        logits: ``(N, K)`` float32 logits (CPU).
    """

    counts: dict[str, torch.Tensor]
    logits: torch.Tensor

    @property
    def layers(self) -> list[str]:
        return list(self.counts)

    @property
    def predictions(self) -> torch.Tensor:
        """Predicted classes ``(N,)`` int64."""
        return self.logits.argmax(1)

    def entropies(self) -> dict[str, torch.Tensor]:
        """``{layer: (N,) float64}`` per-sample histogram entropies in bits."""
        return {k: entropy_from_counts(c) for k, c in self.counts.items()}

    def batch_entropies(self, group_size: int) -> dict[str, torch.Tensor]:
        """``{layer: (N // group_size,)}`` batch-level entropies in bits (consecutive groups; see :func:`group_entropies`)."""
        return {k: group_entropies(c, group_size) for k, c in self.counts.items()}

    def predictive_entropy(self, base: float = 2.0) -> torch.Tensor:
        """``(N,)`` predictive entropy (bits by default) of the logits."""
        return predictive_entropy(self.logits, base=base) if self.logits.shape[0] else torch.zeros(0)

    def signals(self) -> dict[str, torch.Tensor]:
        """Every per-sample signal in bits: the layers' entropies and ``"predictive"``, ``{name: (N,)}``."""
        out = dict(self.entropies())
        out["predictive"] = self.predictive_entropy().double()
        return out


def run_monitor(model: nn.Module, images: torch.Tensor, edges: Mapping[str, object], *, batch_size: int = 250,
                device: torch.device | str | None = None) -> MonitorReadout:
    """Run ``model`` on ``images`` with an :class:`ActivationMonitor` on the layers of ``edges``.

    Args:
        model: a classifier returning logits ``(N, K)``; runs in eval mode with frozen parameters,
            in fp32 (:func:`labutils.runtime.frozen_eval`: modes and flags restored afterwards).
        images: ``(N, C, H, W)`` uint8 0..255 or float in ``[0, 1]``.
        edges: ``{layer name: fixed bin edges}``, e.g. from :func:`calibrate_edges`; its keys are
            the monitored layers.
        batch_size: images per forward pass (memory: one batch's activations at a time).
        device: where to run (default: the model's device).

    Returns:
        :class:`MonitorReadout` with the per-sample counts of every layer and the logits.
    """
    if not isinstance(edges, Mapping) or not edges:
        raise ValueError("edges must be a non-empty dict {layer name: bin edges}, e.g. from calibrate_edges().")
    logits = []
    with ActivationMonitor(model, list(edges), edges=edges) as mon, frozen_eval(model), torch.no_grad():
        for x in _batches(model, images, batch_size, device):
            logits.append(model(x).float().cpu())
    z = torch.cat(logits) if logits else torch.zeros(0, 0)
    return MonitorReadout({k: mon.counts(k) for k in mon.layers}, z)


def activation_entropies(model: nn.Module, images: torch.Tensor, edges: Mapping[str, object], *,
                         group_size: int | None = None, batch_size: int = 250,
                         device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """``{layer: entropies}`` in bits: per sample ``(N,)``, or per group of ``group_size`` images ``(N // group_size,)``.

    The batch-level values (``group_size`` set) are the paper's: one histogram over the flattened
    activations of ``group_size`` consecutive images.  See :func:`run_monitor` for the arguments.
    """
    readout = run_monitor(model, images, edges, batch_size=batch_size, device=device)
    return readout.entropies() if group_size is None else readout.batch_entropies(group_size)
