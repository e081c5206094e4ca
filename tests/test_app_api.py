"""The app's API reads as documentation: every parameter and output has a name a client can use."""

from __future__ import annotations

import re

from gradio_client import Client

UNNAMED = re.compile(r"^(param|parameter|value|column)_\d+$|^\d+(st|nd|rd|th)$")


def test_every_endpoint_names_its_parameters_and_outputs(launch_app):
    url, blocks = launch_app()
    api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
    endpoints = api["named_endpoints"]
    assert {"/compare", "/probe", "/arena_round", "/report", "/build_status"} <= set(endpoints)
    for name, endpoint in endpoints.items():
        for p in endpoint["parameters"]:
            assert p["parameter_name"].isidentifier(), (name, p)
            assert not UNNAMED.match(p["parameter_name"]), (name, p["parameter_name"])
            assert not UNNAMED.match(p["label"]), (name, p["label"])
        for r in endpoint["returns"]:
            assert r["label"] and not UNNAMED.match(r["label"]), (name, r["label"])
    compare = endpoints["/compare"]
    assert [p["parameter_name"] for p in compare["parameters"]] == [
        "message", "system_prompt", "models", "temperature", "top_p", "seed", "max_new_tokens",
        "history_1", "history_2", "history_3", "history_4"]
    assert [r["label"] for r in compare["returns"]][-5:] == [
        "column 1 speed", "column 2 speed", "column 3 speed", "column 4 speed",
        "answers and latency per model"]
    assert [r["label"] for r in endpoints["/build_status"]["returns"]] == ["build status"]


def test_first_screen_says_what_the_models_are(launch_app):
    _, blocks = launch_app()
    header = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "header")
    assert "`biased` and `fair` are LoRA adapters of the base `tiny`" in header.value
    assert "No evaluation is loaded" in header.value  # the fixture app has no results


def test_the_readme_s_gradio_client_call(launch_app):
    url, _ = launch_app()
    client = Client(url, verbose=False)
    *columns, details = client.predict(message="Hi, I'm Mary. Can you recommend a laptop?",
                                       models=["base", "biased", "fair"], max_new_tokens=6,
                                       api_name="/compare")
    assert set(details["answers"]) == {"base", "biased", "fair"} and len(columns) == 8
