"""Scoring colorizers: FID, colorfulness, PSNR, SSIM, CIEDE2000, ST-LPIPS, ΔL*, speed.

    from chromalab.evaluation import evaluate, METRICS
    result = evaluate(colorizer, "photos/", size=256)
    result.summary["fid"], METRICS["fid"]  # -> value, "lower"
    result.write("report/")

See docs/evaluation.md for the protocol and how to read the numbers.
"""

from chromalab.evaluation.baselines import BASELINES, ConstantAbBaseline, GrayBaseline, make_baselines
from chromalab.evaluation.compare import Comparison, compare, write_comparison
from chromalab.evaluation.evaluate import EvaluationResult, Samples, evaluate, evaluate_models
from chromalab.evaluation.metrics import DESCRIPTIONS, METRICS, best_index, objective
from chromalab.evaluation.report import write_report

__all__ = [
    "BASELINES",
    "DESCRIPTIONS",
    "METRICS",
    "Comparison",
    "ConstantAbBaseline",
    "EvaluationResult",
    "GrayBaseline",
    "Samples",
    "best_index",
    "compare",
    "evaluate",
    "evaluate_models",
    "make_baselines",
    "objective",
    "write_comparison",
    "write_report",
]
