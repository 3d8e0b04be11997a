"""Claims about trained models: checked, printed, and logged for the seed/precision table.

A trained model depends on the seed and on the CPU (AVX2 and AVX-512 kernels
round differently; bf16 CPUs train in bf16), so a number a notebook or test
asserts about it must hold with a margin measured over seeds 0-4 and both
precisions.  :class:`Claims` asserts such a number against its bound and
appends ``{where, claim, value, op, bound, margin, ...}`` to
``$LAB_CLAIMS_LOG`` when that is set; ``make seeds``
(:mod:`labutils.course.seeds`) runs the notebooks and the model-training tests under
every seed and precision and prints one table of those records.

Some claims only hold at the scale of the ``standard`` profile (a model
trained for minutes, thousands of test images): mark them ``scale=True``.
They are asserted only where the profile's ``assert_scale_claims`` is true;
elsewhere they are printed as an observation.

    check = Claims("03_pgd_and_norms", P)
    check.at_most("PGD-10 accuracy at 8/255", acc, 0.05)
    check.at_least("FastNet test accuracy", acc, 0.855, scale=True)
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import torch

from .. import settings
from ..runtime import autocast_dtype, default_device

__all__ = ["ClaimFailed", "Claims", "run_context"]


class ClaimFailed(AssertionError):
    """A measured value broke the bound a notebook or test claims for it."""


def run_context() -> dict:
    """Seed offset, training precision and CPU kernels of this process: what makes two runs differ."""
    dtype = autocast_dtype(default_device())
    return {"seed": settings.seed(), "precision": "bf16" if dtype is not None else "fp32",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "device": default_device().type}


def _number(value) -> float:
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


class Claims:
    """Checks the claims of one notebook or test against their bounds.

    Args:
        where: what makes the claims (a notebook stem or a test id).
        profile: the run's :class:`labutils.course.profiles.Profile` (or any mapping with
            ``assert_scale_claims``); None: every claim is asserted.
        verbose: print each claim with its value and margin.
    """

    def __init__(self, where: str, profile: Mapping | None = None, *, verbose: bool = True):
        self.where = where
        self.profile = getattr(profile, "name", None)
        self.assert_scale = True if profile is None else bool(profile["assert_scale_claims"])
        self.verbose = verbose
        self.records: list[dict] = []

    def at_least(self, claim: str, value, bound: float, *, scale: bool = False) -> float:
        """Claim ``value >= bound``; return the margin ``value - bound``."""
        return self._check(claim, _number(value), ">=", float(bound), scale)

    def at_most(self, claim: str, value, bound: float, *, scale: bool = False) -> float:
        """Claim ``value <= bound``; return the margin ``bound - value``."""
        return self._check(claim, _number(value), "<=", float(bound), scale)

    def _check(self, claim: str, value: float, op: str, bound: float, scale: bool) -> float:
        margin = value - bound if op == ">=" else bound - value
        passed = math.isfinite(value) and margin >= 0
        asserted = self.assert_scale or not scale
        record = {"where": self.where, "claim": claim, "value": value, "op": op, "bound": bound,
                  "margin": margin, "passed": passed, "asserted": asserted, "profile": self.profile,
                  **run_context()}
        self.records.append(record)
        self._log(record)
        kind = "claim" if asserted else "observation (asserted at the standard profile's scale only)"
        status = "holds" if passed else "FAILS"
        text = f"{kind}: {claim}: {value:.4g} {op} {bound:.4g} {status} (margin {margin:+.4g})"
        if self.verbose:
            print(text)
        if asserted and not passed:
            raise ClaimFailed(f"{self.where}: {text}; seed offset {record['seed']}, {record['precision']}, "
                              f"CPU kernels {record['cpu_capability']}")
        return margin

    @staticmethod
    def _log(record: dict) -> None:
        path = settings.claims_log()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(path, "a", encoding="utf-8") as f:  # one write per line: concurrent appends stay whole
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
