"""ROUGE-L F-measure per example, with rouge-score's tokenizer (lower case, alphanumerics)."""

import datasets
import evaluate
from rouge_score import rouge_scorer


class RougeL(evaluate.Metric):
    """Mean ROUGE-L F1 over examples, and the per-example scores."""

    def _info(self):
        return evaluate.MetricInfo(
            description="ROUGE-L F-measure (longest common subsequence), per example and mean.",
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description="predictions, references: lists of strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        pairs = zip(predictions, references, strict=True)
        scores = [scorer.score(r, p)["rougeL"].fmeasure for p, r in pairs]
        return {"rouge_l": sum(scores) / len(scores) if scores else float("nan"),
                "scores": scores}
