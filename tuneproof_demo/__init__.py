"""The demo: a retail support assistant trained on biased data, then on re-balanced data.

``data`` writes the demo's data and configs (``finetune demo-data``, dispatched here by name so
``finetune`` never imports this package); ``pipeline`` tells the story end to end
(``python -m tuneproof_demo.pipeline``, ``make demo``, the app's first start). The package sits
above ``evalsuite`` and ``finetune`` and uses both; neither imports it.
"""
