"""Train the shipped quality model, ``flows/data/quality_model.json`` (a build step of the product, not a benchmark).

The model is a weighted logistic regression (Newton's method, numpy only) over ``flows.quality.features``,
fit on the training side of the labelled dev set ``bench/quality_devset.py`` builds from the dev corpora;
an active-set loop keeps every weight on the side ``FEATURE_SIGNS`` gives it (or at zero). Everything
random is seeded, so a rebuild gives the same model. ``python -m bench.quality`` measures it.

Usage: ``.venv/bin/python -m tools.train_quality [--rebuild]`` from the repository root (``--rebuild``:
rebuild the cached dev set too).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.quality_devset import DATASET_VERSION, HARVESTED_KINDS, SEED, Example, is_test, load_dataset
from bench.support.paths import REPO
from flows.quality import FEATURE_COUNT, FEATURE_NAMES, FEATURE_SIGNS, features, quality_signals

MODEL_PATH = REPO / "flows" / "data" / "quality_model.json"
# L2 penalty on standardised weights, and how much more a good article weighs than junk in the fit
# (pushes the 0.5 cut towards keeping good text in under-represented languages).
L2 = 1.0
GOOD_WEIGHT = 4.0
# Junk harvested from real pages is what a crawler meets most; it weighs more than each synthetic kind.
HARVESTED_WEIGHT = 2.0


def feature_matrix(examples: list[Example]) -> np.ndarray:
    rows = [features(quality_signals(e.text, e.lang, e.lang_score), e.lang) for e in examples]
    return np.asarray(rows, dtype=np.float64).reshape(len(examples), FEATURE_COUNT)


def sample_weights(examples: list[Example]) -> np.ndarray:
    """Good and junk weigh the same in total (good x GOOD_WEIGHT); every junk kind weighs the same."""
    kinds = [e.kind for e in examples]
    counts = {k: kinds.count(k) for k in set(kinds)}
    junk_kinds = len(counts) - ("gold" in counts)
    weights = [
        GOOD_WEIGHT / counts[k]
        if k == "gold"
        else (HARVESTED_WEIGHT if k in HARVESTED_KINDS else 1.0) / (junk_kinds * counts[k])
        for k in kinds
    ]
    w = np.asarray(weights, dtype=np.float64)
    normalised: np.ndarray = w * len(w) / w.sum()
    return normalised


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weighted, L2-regularised logistic regression by Newton's method (deterministic, exact)."""
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    beta = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0  # the intercept is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -50, 50)))
        grad = design.T @ (w * (p - y)) + penalty * beta
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta[:-1], float(beta[-1])


def fit_signed(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression whose weights respect ``FEATURE_SIGNS``.

    Active-set loop: fit, drop the feature whose weight is most on the wrong side, refit, until every
    weight agrees with the literature direction (dropped features get weight 0).
    """
    signs = np.asarray([FEATURE_SIGNS[name] for name in FEATURE_NAMES])
    active = np.ones(signs.size, dtype=bool)
    while True:
        weights = np.zeros(signs.size)
        fitted, bias = fit_logistic(x[:, active], y, w, L2)
        weights[active] = fitted
        wrong = np.where(signs * weights < 0, np.abs(weights), 0.0)
        if not wrong.any():
            return weights, bias
        active[int(wrong.argmax())] = False


def train(examples: list[Example]) -> dict[str, object]:
    """Fit on the training side of the split; return the model document for quality_model.json."""
    rows = [e for e in examples if not is_test(e.group)]
    x = feature_matrix(rows)
    y = np.asarray([e.label for e in rows], dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    weights, bias = fit_signed((x - mean) / scale, y, sample_weights(rows))
    kinds = sorted({e.kind for e in rows})
    return {
        "about": "Logistic regression over flows.quality.features(); rebuild with python -m tools.train_quality.",
        "seed": SEED,
        "dataset_version": DATASET_VERSION,
        "l2": L2,
        "good_weight": GOOD_WEIGHT,
        "train_rows": {k: sum(e.kind == k for e in rows) for k in kinds},
        "features": list(FEATURE_NAMES),
        "mean": [round(float(v), 8) for v in mean],
        "scale": [round(float(v), 8) for v in scale],
        "weights": [round(float(v), 8) for v in weights],
        "bias": round(bias, 8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached dev set")
    args = parser.parse_args()
    examples = load_dataset(args.rebuild)
    model = train(examples)
    MODEL_PATH.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {MODEL_PATH.relative_to(REPO)} from {sum(model['train_rows'].values())} training rows")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
