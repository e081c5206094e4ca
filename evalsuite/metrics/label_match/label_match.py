"""Label extraction by regex, accuracy, per-class precision / recall / F1 and a confusion matrix.

The label is the pattern's first group (or the whole match when it has no group), stripped and
lower-cased; a text without a match gets the label ``<none>``.
"""

import datasets
import evaluate

from evalsuite.labels import NONE, extract

__all__ = ["NONE", "extract", "LabelMatch"]


class LabelMatch(evaluate.Metric):
    """Accuracy of extracted labels with per-class P/R/F1 (classes from the references)."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Regex label extraction, accuracy, per-class P/R/F1, confusion matrix.",
            citation="",
            inputs_description="predictions, references: strings; pattern: a regex",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, pattern):
        pred = [extract(p, pattern) for p in predictions]
        ref = [extract(r, pattern) for r in references]
        scores = [float(p == r and r != NONE) for p, r in zip(pred, ref, strict=True)]
        classes = sorted({r for r in ref if r != NONE})
        per_class = {}
        for c in classes:
            tp = sum(1 for p, r in zip(pred, ref, strict=True) if p == c and r == c)
            fp = sum(1 for p, r in zip(pred, ref, strict=True) if p == c and r != c)
            fn = sum(1 for p, r in zip(pred, ref, strict=True) if p != c and r == c)
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[c] = {"precision": precision, "recall": recall, "f1": f1,
                            "support": tp + fn}
        # Predicted labels outside the reference classes (and <none>) get their own columns.
        columns = classes + sorted({p for p in pred if p not in classes})
        pairs = list(zip(pred, ref, strict=True))
        matrix = [[sum(1 for p, r in pairs if r == rc and p == pc) for pc in columns]
                  for rc in classes]
        return {
            "accuracy": sum(scores) / len(scores) if scores else float("nan"),
            "macro_f1": (sum(v["f1"] for v in per_class.values()) / len(per_class)
                         if per_class else float("nan")),
            "scores": scores,
            "predicted_labels": pred,
            "reference_labels": ref,
            "per_class": per_class,
            "confusion": {"rows": classes, "columns": columns, "matrix": matrix},
        }
