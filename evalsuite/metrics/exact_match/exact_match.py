"""Exact match after normalisation: lower case, punctuation removed, whitespace collapsed."""

import re
import string

import datasets
import evaluate

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower-case, drop punctuation, collapse whitespace."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


class ExactMatch(evaluate.Metric):
    """Share of predictions equal to their reference after :func:`normalize`."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Normalised exact match (lower case, no punctuation, single spaces).",
            citation="",
            inputs_description="predictions, references: lists of strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        pairs = zip(predictions, references, strict=True)
        scores = [float(normalize(p) == normalize(r)) for p, r in pairs]
        return {
            "exact_match": sum(scores) / len(scores) if scores else float("nan"),
            "scores": scores,
        }
