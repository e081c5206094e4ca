"""The app's layout and event wiring.

Every event has an explicit ``api_name``, every handler parameter a readable name and every
output component a label, so ``gradio_client.Client(url).view_api()`` reads as documentation
(tests/test_app_api.py).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import gradio as gr

from finetune.data.lexicon import axes as known_axes
from tuneproof_app import arena, compare, examples, intro, probe, reports
from tuneproof_app.background import status_html
from tuneproof_app.compare import N_COLUMNS
from tuneproof_app.context import MAX_ADAPTERS, AppContext, friendly
from tuneproof_app.probe import DEFAULT_AXES
from tuneproof_app.spaces import gpu
from tuneproof_app.votes import VERDICTS

ENGINE = "engine"
"""Concurrency group of the events that run the model: one at a time, in queue order."""
CSS = ".tp-probe table{border-collapse:collapse}.tp-probe td,.tp-probe th{border:1px solid #ccc;"\
      "padding:4px 8px;vertical-align:top}"
# Plain text: headless browsers and some desktops have no emoji font.
SYSTEM_BOX = "tp-system"
STATUS_EVERY_S = 2.0
"""How often an open page polls a background build's progress."""
VOTE_LABELS = {"left": "← Left is better", "right": "Right is better →", "tie": "Tie",
               "both_bad": "Both bad"}


def api_params(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Name a handler's parameters as API clients see them (gradio reads the signature).

    For handlers taking ``*args`` (one chat history per Compare column), whose parameters
    gradio would otherwise call ``param_7``...
    """
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD

    def name(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in names])
        return fn

    return name


def _default_models(ctx: AppContext) -> list[str]:
    return ctx.models[: 1 + MAX_ADAPTERS]


def _probe_example(ctx: AppContext) -> str:
    for conv in ctx.examples:
        text = compare.content_text(conv[-1]["content"])
        if "recommend" in text.lower() or "$" in text:
            return text
    return "Hi, I'm Mary. Can you recommend a laptop? I want one the best you have."


def build_ui(ctx: AppContext) -> gr.Blocks:
    """The Blocks app: Compare, Arena, Counterfactual probe and Reports tabs."""
    with gr.Blocks(title="tuneproof") as demo:
        header = gr.Markdown(_header(ctx), elem_id="header")
        status = gr.HTML(_status(ctx), visible=ctx.builder is not None, elem_id="build-status")
        with gr.Tab("Compare", id="compare"):
            compare_models = _compare_tab(ctx)
        with gr.Tab("Arena", id="arena"):
            boards = _arena_tab(ctx)
        with gr.Tab("Counterfactual probe", id="probe"):
            probe_models = _probe_tab(ctx)
        with gr.Tab("Reports", id="reports"):
            report_parts = _reports_tab(ctx)
        _status_api(ctx)
        if ctx.builder is not None:
            systems = [b for b in demo.blocks.values()
                       if SYSTEM_BOX in (getattr(b, "elem_classes", None) or [])]
            _watch_build(ctx, header, status, [compare_models, probe_models], systems,
                         report_parts)
        # a page opened later shows the votes cast since the app started
        demo.load(friendly(partial(_boards, ctx)), None, list(boards),
                  api_name="leaderboard_on_load", concurrency_id="votes", concurrency_limit=8)
    return demo


def _header(ctx: AppContext) -> str:
    """The title and the first screen's two sentences (``tuneproof_app.intro``)."""
    notices = "".join(f"\n\n**`{m}`**: {ctx.notice(m)}" for m in ctx.models if ctx.notice(m))
    cards = []
    for name in ctx.adapters:
        if ctx.registry is not None and name in ctx.registry.names():
            adapter = ctx.registry.get(name)
            cards.append(intro.read_card(name, adapter.run_dir, adapter.run))
    results = intro.pick_results(reports.find_results(ctx.results_dirs),
                                 [c.name for c in cards])
    building = ctx.builder is not None and not ctx.builder.status().done
    return ("# tuneproof · base and adapters side by side\n"
            + " ".join(intro.intro(ctx.engine.base_ref, cards, results, building)) + notices)


def _status(ctx: AppContext) -> str:
    if ctx.builder is None:
        return ""
    return status_html(ctx.builder.status(), ctx.engine.base_ref, ctx.adapters)


def _system_box(ctx: AppContext) -> Any:
    # the class lets a background build fill every tab's box once the demo data exists
    return gr.Textbox(ctx.system_prompt, label="System prompt", lines=1,
                      elem_classes=[SYSTEM_BOX])


def _status_api(ctx: AppContext) -> None:
    def build_status() -> dict[str, Any]:
        """The background build's state (``none`` without one) and the models served now."""
        state = ctx.builder.status() if ctx.builder is not None else None
        return {"state": state.state if state else "none",
                "fraction": state.fraction if state else 1.0,
                "message": state.message if state else "", "error": state.error if state else "",
                "seconds": round(state.seconds, 1) if state else 0.0,
                "models": ctx.models, "status": _status(ctx)}

    dep = gr.api(build_status, api_name="build_status", concurrency_id="status",
                 concurrency_limit=8)
    # gr.api names its output "1st"; the label is read when the Blocks closes.
    for block_id in dep["outputs"]:
        gr.context.get_blocks_context().blocks[block_id].label = "build status"


def _watch_build(ctx: AppContext, header: Any, status: Any, model_lists: list[Any],
                 systems: list[Any], report_parts: tuple[Any, ...]) -> None:
    """Show a background build's progress; when models or reports change, refresh the lists.

    The server-side choices change for every session at once (they validate requests); each
    open page learns of the change at its next tick, by the version it last showed.
    """
    pick, data_pick, runs_df, curve = report_parts

    def sync_choices() -> None:
        for box in model_lists:
            box.choices = [(m, m) for m in ctx.models]
        pick.choices = [(n, n) for n in reports.find_results(ctx.results_dirs)]
        data_pick.choices = [(n, n) for n in ctx.registry.names()] if ctx.registry else []

    ctx.on_change.append(sync_choices)
    shown = gr.State(ctx.version)
    timer = gr.Timer(STATUS_EVERY_S)

    def on_tick(seen: int, pick_value: Any, data_value: Any, *system_values: str) -> Any:
        state = ctx.builder.status()  # before the version: a finished build bumped it already
        version = ctx.version
        keep = gr.Timer(active=not state.done)
        n_lists = len(model_lists) + len(systems) + 5
        if seen == version:
            return (_status(ctx), seen, *[gr.skip()] * n_lists, keep)
        results = list(reports.find_results(ctx.results_dirs))
        runs = ctx.registry.names() if ctx.registry else []
        return (_status(ctx), version, _header(ctx),
                *[gr.update(choices=ctx.models) for _ in model_lists],
                *[gr.skip() if (v or "").strip() else ctx.system_prompt for v in system_values],
                gr.update(choices=results, value=pick_value or results[0]) if results
                else gr.skip(),
                gr.update(choices=runs, value=data_value or runs[0]) if runs else gr.skip(),
                reports.run_summary(ctx.registry) if ctx.registry else gr.skip(),
                reports.curves(ctx.registry) if ctx.registry else gr.skip(), keep)

    timer.tick(on_tick, [shown, pick, data_pick, *systems],
               [status, shown, header, *model_lists, *systems, pick, data_pick, runs_df, curve,
                timer],
               api_name="build_tick", api_visibility="undocumented", show_progress="hidden",
               concurrency_id="status", concurrency_limit=8)


def _settings(ctx: AppContext) -> tuple[Any, Any, Any, Any]:
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            temperature = gr.Slider(0.0, 2.0, 0.0, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1.0, 1.0, step=0.05, label="Top-p")
            seed = gr.Number(0, precision=0, label="Seed (sampling only)")
            max_new = gr.Slider(1, ctx.max_new_tokens_cap, min(32, ctx.max_new_tokens_cap),
                                step=1, label="Max new tokens")
    return temperature, top_p, seed, max_new


def _compare_tab(ctx: AppContext) -> Any:
    chosen = _default_models(ctx)
    models = gr.CheckboxGroup(ctx.models, value=chosen, elem_id="compare-models",
                              label=f"Models: the base and up to {MAX_ADAPTERS} adapters")
    system = _system_box(ctx)
    columns, chats, stats = [], [], []
    with gr.Row(equal_height=True):
        for j in range(N_COLUMNS):
            with gr.Column(visible=j < len(chosen), min_width=220) as col:
                label = chosen[j] if j < len(chosen) else f"column {j + 1}"
                chats.append(gr.Chatbot(label=label, height=300, elem_id=f"compare-chat-{j}"))
                stats.append(gr.Markdown(elem_id=f"compare-stats-{j}", show_label=False,
                                         label=f"column {j + 1} speed"))
            columns.append(col)
    with gr.Row():
        message = gr.Textbox(label="Message", scale=5, elem_id="compare-message",
                             placeholder="Ask every model at once; Enter sends")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="compare-send")
    with gr.Row():
        swap_btn = gr.Button("Swap demographics", elem_id="compare-swap")
        clear = gr.Button("Clear conversations", elem_id="compare-clear")
    temperature, top_p, seed, max_new = _settings(ctx)
    with gr.Row():
        bias_btn = gr.Button("Show me the bias", variant="secondary", elem_id="compare-bias")
        gr.Markdown("Runs the chosen models on a pair of prompts that differ only in the "
                    "customer's name, and puts the answers side by side.")
    bias_table = gr.HTML(elem_id="compare-bias-table", label="bias pair answers")
    grouped = examples.groups(examples.heldout(ctx))
    for label, prompts in grouped:
        gr.Examples([[p] for p in prompts], inputs=[message], label=label,
                    examples_per_page=len(prompts))
    if not grouped and ctx.examples:
        gr.Examples([[compare.content_text(c[-1]["content"])] for c in ctx.examples[:8]],
                    inputs=[message], label="Held-out prompts")
    with gr.Accordion("Run details", open=False):
        details = gr.JSON(label="answers and latency per model")

    @api_params("message", "system_prompt", "models", "temperature", "top_p", "seed",
                "max_new_tokens", *(f"history_{j + 1}" for j in range(N_COLUMNS)))
    @gpu
    @friendly
    def on_send(msg: str, sys: str, names: list[str], temp: float, p: float, s: Any,
                n: Any, *history: Any) -> Any:
        yield from compare.run_compare(ctx, msg, sys, names, temp, p, s, n, history)

    def on_models(models: list[str]) -> list[Any]:
        names = [m for m in ctx.models if m in (models or [])][:N_COLUMNS]
        shown = [gr.update(visible=j < len(names)) for j in range(N_COLUMNS)]
        reset = [gr.update(value=[], label=names[j] if j < len(names) else f"column {j + 1}")
                 for j in range(N_COLUMNS)]
        return [*shown, *reset, *([""] * N_COLUMNS)]

    gr.on([send.click, message.submit], on_send,
          inputs=[message, system, models, temperature, top_p, seed, max_new, *chats],
          outputs=[*chats, *stats, details], api_name="compare", concurrency_id=ENGINE,
          concurrency_limit=1)
    models.change(on_models, models, [*columns, *chats, *stats], api_name="select_models")
    clear.click(lambda: [[]] * N_COLUMNS + [""] * N_COLUMNS, None, [*chats, *stats],
                api_name="clear_compare")
    swap_btn.click(friendly(compare.swap_demographics), message, message,
                   api_name="swap_demographics")

    @gpu
    @friendly
    def on_bias(system_prompt: str, models: list[str], max_new_tokens: Any) -> tuple[str, str]:
        original, table, _ = probe.show_bias(ctx, system_prompt, models, max_new_tokens)
        return original, table

    bias_btn.click(on_bias, [system, models, max_new], [message, bias_table],
                   api_name="show_bias", concurrency_id=ENGINE, concurrency_limit=1)
    return models


def _boards(ctx: AppContext) -> tuple[Any, Any, Any, str]:
    """The arena's tables and its ratings chart (the chart last: API clients keep indexes)."""
    board, pairs, verdicts = arena.tables(ctx)
    return board, pairs, verdicts, reports.ratings_chart(board)


def _vote(ctx: AppContext, round_id: str, verdict: str) -> tuple[Any, ...]:
    reveal, board, pairs, verdicts = arena.vote(ctx, round_id, verdict=verdict)
    return reveal, board, pairs, verdicts, reports.ratings_chart(board)


def _arena_tab(ctx: AppContext) -> tuple[Any, Any, Any, Any]:
    gr.Markdown("Two models drawn at random answer blind, on random sides. Vote, then see "
                "who was who. The walk mode goes through the held-out prompts in order.")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", scale=5, elem_id="arena-prompt")
        deal_btn = gr.Button("New round", variant="primary", scale=1, elem_id="arena-deal")
    with gr.Row():
        walk = gr.Checkbox(label="Walk the held-out prompts", elem_id="arena-walk")
        walk_index = gr.Number(0, precision=0, label="Next held-out prompt (0-based)")
        max_new = gr.Slider(1, ctx.max_new_tokens_cap, min(32, ctx.max_new_tokens_cap), step=1,
                            label="Max new tokens")
    system = _system_box(ctx)
    status = gr.Markdown(elem_id="arena-status", label="round status", show_label=False)
    with gr.Row(equal_height=True):
        left = gr.Textbox(label="Left", lines=4, max_lines=8, interactive=False,
                          elem_id="arena-left")
        right = gr.Textbox(label="Right", lines=4, max_lines=8, interactive=False,
                           elem_id="arena-right")
    with gr.Row():
        buttons = {v: gr.Button(VOTE_LABELS[v], elem_id=f"arena-vote-{v}") for v in VERDICTS}
    round_id = gr.Textbox(visible=False, label="round id")
    reveal = gr.Markdown(elem_id="arena-reveal", label="who was who", show_label=False)
    gr.Markdown("### Leaderboard (Bradley-Terry with 95% bootstrap CIs; online Elo)")
    board, pairs, verdicts = arena.tables(ctx)
    board_chart = gr.HTML(reports.ratings_chart(board), elem_id="arena-chart",
                          label="ratings chart")
    board_df = gr.Dataframe(board, interactive=False, elem_id="arena-board", label="leaderboard",
                            show_label=False)
    gr.Markdown("Per-pair record (win rate counts ties and 'both bad' as half)")
    pairs_df = gr.Dataframe(pairs, interactive=False, label="per-pair record", show_label=False)
    gr.Markdown("Walk verdicts (exact sign test on decisive votes, α = 0.05)")
    verdicts_df = gr.Dataframe(verdicts, interactive=False, label="walk verdicts",
                               show_label=False)
    refresh = gr.Button("Refresh leaderboard")

    @gpu
    @friendly
    def on_deal(prompt: str, system_prompt: str, walk: bool, walk_index: Any,
                max_new_tokens: Any) -> tuple[Any, ...]:
        return (*arena.deal(ctx, prompt, system_prompt, walk, walk_index, max_new_tokens), "")

    deal_btn.click(on_deal, [prompt, system, walk, walk_index, max_new],
                   [left, right, round_id, status, prompt, walk_index, reveal],
                   api_name="arena_round", concurrency_id=ENGINE, concurrency_limit=1)
    for verdict, button in buttons.items():
        button.click(friendly(partial(_vote, ctx, verdict=verdict)), round_id,
                     [reveal, board_df, pairs_df, verdicts_df, board_chart],
                     api_name=f"vote_{verdict}",
                     concurrency_id="votes", concurrency_limit=8)
    refresh.click(friendly(partial(_boards, ctx)), None,
                  [board_df, pairs_df, verdicts_df, board_chart], api_name="leaderboard",
                  concurrency_id="votes", concurrency_limit=8)
    return board_df, pairs_df, verdicts_df, board_chart


def _probe_tab(ctx: AppContext) -> Any:
    gr.Markdown("A message with a name or gendered words → its demographic variants → every "
                "model's answer to each. Answers that differ from the original's (demographic "
                "words masked) are highlighted.")
    message = gr.Textbox(_probe_example(ctx), label="Message", elem_id="probe-message")
    with gr.Row():
        models = gr.CheckboxGroup(ctx.models, value=ctx.models, label="Models")
        axes = gr.CheckboxGroup(list(known_axes()), value=list(DEFAULT_AXES), label="Vary")
        max_new = gr.Slider(1, ctx.max_new_tokens_cap, min(32, ctx.max_new_tokens_cap), step=1,
                            label="Max new tokens")
    system = _system_box(ctx)
    run = gr.Button("Probe", variant="primary", elem_id="probe-run")
    table = gr.HTML(elem_id="probe-table", label="answers per variant")
    with gr.Accordion("Details", open=False):
        details = gr.JSON(label="probe details")

    @gpu
    @friendly
    def on_probe(message: str, models: list[str], axes: list[str], max_new_tokens: Any,
                 system_prompt: str) -> Any:
        return probe.run_probe(ctx, message, system_prompt, models, axes, max_new_tokens)

    run.click(on_probe, [message, models, axes, max_new, system], [table, details],
              api_name="probe", concurrency_id=ENGINE, concurrency_limit=1)
    return models


def _chart_with_table(title: str, kind: str, view: reports.EvalView) -> tuple[Any, Any]:
    """A chart (inline SVG) with its numbers one click away."""
    chart = gr.HTML(view.charts.get(kind, ""), elem_id=f"reports-chart-{kind}",
                    label=f"{title} (chart)")
    with gr.Accordion(f"{title}: the numbers", open=False):
        table = gr.Dataframe(view.tables.get(kind), interactive=False,
                             elem_id=f"reports-table-{kind}", label=f"{title} (table)",
                             show_label=False)
    return chart, table


def _reports_tab(ctx: AppContext) -> tuple[Any, Any, Any, Any]:
    found = reports.find_results(ctx.results_dirs)
    names = list(found)
    view = reports.evaluation(found[names[0]] if names else None)
    registry = ctx.registry
    run_names = registry.names() if registry is not None else []
    first = reports.data_report(registry, run_names[0]) if run_names else {}
    with gr.Tab("Evaluation"):
        with gr.Row():
            pick = gr.Dropdown(names, value=names[0] if names else None, label="Evaluation",
                               scale=3)
            with gr.Column(scale=1, min_width=240):
                html_btn = gr.DownloadButton("Download the report (HTML)", view.downloads[0],
                                             elem_id="reports-download-html", size="sm")
                zip_btn = gr.DownloadButton("Download everything (zip)", view.downloads[1],
                                            elem_id="reports-download-zip", size="sm")
        verdict = gr.HTML(view.verdict, elem_id="reports-verdict", label="verdict")
        with gr.Row():
            with gr.Column():
                flip = _chart_with_table("Flip rate per model", "flip", view)
                metric = _chart_with_table("Metrics per model", "metric", view)
            with gr.Column():
                group = _chart_with_table("Metrics per group", "group", view)
                curves = _chart_with_table("Training curves", "curves", view)
        with gr.Accordion("The full report (report.md)", open=False):
            report_md = gr.Markdown(view.markdown, elem_id="reports-eval", label="report.md",
                                    show_label=False)
    with gr.Tab("Disagreements"):
        gr.Markdown("Held-out rows (original wording) where an adapter and the base score "
                    "differently.")
        dis_df = gr.Dataframe(view.disagreements, interactive=False, label="disagreements",
                              show_label=False)
    with gr.Tab("Runs and training curves"):
        runs_df = gr.Dataframe(reports.run_summary(registry) if registry else None,
                               interactive=False, label="runs", show_label=False)
        curve = reports.curves(registry) if registry else None
        curve_plot = gr.LinePlot(curve, x="step", y="value", color="series",
                                 title="Training curves", elem_id="reports-curves")
        with gr.Accordion("Training curves: the numbers", open=False):
            gr.Dataframe(curve, interactive=False)
        reload_runs = gr.Button("Reload run table")
    with gr.Tab("Data validation"):
        data_pick = gr.Dropdown(run_names, value=run_names[0] if run_names else None,
                                label="Data validation report of run")
        data_md = gr.Markdown(reports.data_report_markdown(first), elem_id="reports-data",
                              label="data validation report", show_label=False)
        with gr.Accordion("data_report.json", open=False):
            data_json = gr.Code(json.dumps(first, indent=2), language="json",
                                label="data_report.json", show_label=False)

    def on_pick(evaluation: str) -> tuple[Any, ...]:
        name = evaluation
        found = reports.find_results(ctx.results_dirs)  # a background build may add one
        if not name and not found:
            v = reports.evaluation(None)
        elif name not in found:
            raise gr.Error(f"evaluation: unknown {name!r}; choose one of {', '.join(found)}")
        else:
            v = reports.evaluation(found[name])
        return (v.verdict, v.markdown, v.disagreements,
                *(x for k in ("flip", "group", "metric", "curves")
                  for x in (v.charts.get(k, ""), v.tables.get(k))), *v.downloads)

    pick.change(friendly(on_pick), pick,
                [verdict, report_md, dis_df, *flip, *group, *metric, *curves, html_btn, zip_btn],
                api_name="report")

    def on_data(run: str) -> tuple[str, str]:
        report = reports.data_report(registry, run)
        return reports.data_report_markdown(report), json.dumps(report, indent=2)

    data_pick.change(friendly(on_data), data_pick, [data_md, data_json], api_name="data_report")
    reload_runs.click(friendly(lambda: reports.run_summary(registry)), None, runs_df,
                      api_name="runs")
    return pick, data_pick, runs_df, curve_plot
