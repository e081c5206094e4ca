"""The tuneproof Gradio app: compare, arena, counterfactual probe and reports."""
