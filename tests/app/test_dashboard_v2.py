"""Dashboard v2 in real headless Chromium: the claims table on the overview and its links,
the head profile of an IOI-circuit head, the prompt-pair lab end to end and cancelled, and
the consistency fixes (exact tokens, layer 0 at the top, head hover labels, errors beside
their form). Screenshots go to artifacts_dir (test-artifacts/)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interp.results import latest_run, list_runs

GRAPH = ".js-plotly-plot"


def _shot(page, artifacts_dir, name):
    page.screenshot(path=str(artifacts_dir / f"dashboard-v2-{name}.png"), full_page=True)


def _graph_data(page, selector):
    return page.evaluate(f"""() => {{
        const gd = document.querySelector('{selector}');
        return {{data: gd._fullData.map(t => ({{type: t.type, hovertemplate: t.hovertemplate || null, yaxis: t.yaxis || 'y',
                                           z: t.z ? Array.from(t.z, r => Array.from(r)) : null}})),
                 layout: {{shapes: (gd.layout.shapes || []).map(s => [s.x0, s.x1, s.y0, s.y1]),
                          yaxes: Object.fromEntries(Object.keys(gd._fullLayout).filter(k => /^yaxis\\d*$/.test(k))
                                   .map(k => [k, gd._fullLayout[k].range[0] > gd._fullLayout[k].range[1] ? 'reversed' : 'up']))}}}};
    }}""")


def _newest_claims(runs_dir: Path) -> list[tuple[dict, pd.DataFrame]]:
    """Independent reading: the newest run of each (kind, model) and its claims parquet."""
    seen, out = set(), []
    for m in list_runs(runs_dir):
        key = (m["kind"], m["model"].get("id"))
        f = Path(m["path"]) / "tables" / "claims.parquet"
        if key in seen or not f.is_file():
            continue
        seen.add(key)
        out.append((m, pd.read_parquet(f)))
    return out


def test_overview_claims_table_links_to_each_run(server, page, app_runs, artifacts_dir):
    base, _ = server
    page.set_default_timeout(60000)  # a busy shared 2-core machine
    expected = _newest_claims(app_runs[0])
    n_rows = sum(len(df) for _, df in expected)
    assert n_rows > 0
    page.goto(base + "/")
    page.wait_for_selector("#claims-overview table.claims")
    rows = page.locator("#claims-overview tr.claim-row")
    assert rows.count() == n_rows
    # one ioi-reuse claim: ours with CI, control and verdict as stored
    m, df = next((m, df) for m, df in expected if m["kind"] == "ioi-reuse")
    r = df.iloc[0]
    row = page.locator("#claims-overview tr.claim-row", has_text=r["claim_id"]).first
    text = row.inner_text()
    assert r["verdict"] in text
    if np.isfinite(r["value"]):
        assert f"{r['value']:.3g}" in text
    if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
        assert f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]" in text
    _shot(page, artifacts_dir, "overview-claims")
    row.locator("a.claim-link").click()
    run = Path(m["path"]).name
    page.wait_for_url(f"**/analysis/ioi-reuse?run={run}#claim-{r['claim_id']}")
    page.wait_for_selector(f"#claims tr[id='claim-{r['claim_id']}']", state="attached", timeout=60000)
    # the analysis page starts with the claims, then findings and configuration from the manifest
    order = page.evaluate("() => ['claims', 'findings', 'config', 'figure-0'].map(id => document.getElementById(id))"
                          ".map(el => el ? el.getBoundingClientRect().top + window.scrollY : null)")
    assert None not in order and order == sorted(order)
    assert page.locator("#claims tr.claim-row").count() == len(df)
    config = page.locator("#config").inner_text()
    for k, v in list(m["config"].items())[:5]:
        assert k in config and str(v)[:20] in config
    for f in m.get("findings", [])[:2]:
        assert f[:60] in page.locator("#findings").inner_text()
    _shot(page, artifacts_dir, "analysis-claims-config")


def test_head_profile_of_an_ioi_circuit_head(server, page, app_runs, artifacts_dir):
    base, _ = server
    page.set_default_timeout(60000)  # a busy shared 2-core machine
    res = latest_run(app_runs[0], "ioi-reuse")
    roles = res.tables["ioi_roles"]
    circuit = roles[roles["in_circuit"]]
    assert len(circuit), "the tiny-llama ioi-reuse run found no circuit head"
    label = str(circuit["head"].iloc[-1])
    layer, head = (int(x) for x in label[1:].split("H"))
    # from the analysis page (head focus): the head is marked on every layer x head heatmap, L0 at the top
    page.goto(f"{base}/analysis/ioi-reuse?head={label}")
    page.wait_for_selector(".analysis-page .figure " + GRAPH)
    g = _graph_data(page, "#figure-1 " + GRAPH)  # IOI stage 1 heatmap
    assert g["layout"]["yaxes"]["yaxis"] == "reversed"
    assert [head - 0.5, head + 0.5, layer - 0.5, layer + 0.5] in g["layout"]["shapes"]
    page.locator("table.data a.head-link", has_text=label).first.click()
    page.wait_for_url(f"**/head/tiny-llama/{label}")
    page.wait_for_selector("#section-ioi-reuse")
    assert page.locator("#profile-head").inner_text() == label
    ioi = page.locator("#section-ioi-reuse").inner_text()
    for role in roles[roles["head"] == label]["role"]:
        assert role in ioi
    stage1 = float(res.arrays["ioi_stage1"][layer, head])
    assert f"{stage1:.4g}" in ioi
    # ObsProp importance and its rank among the model's heads, computed here independently
    ob = latest_run(app_runs[0], "obsprop")
    imp = ob.arrays["importance_subject_pronoun"]
    rank = int((imp > imp[layer, head]).sum()) + 1
    row = page.locator("table.obsprop-importance tr", has_text="subject_pronoun").first.inner_text()
    assert f"{imp[layer, head]:.4g}" in row and f"{rank}/{imp.size}" in row
    # talking-heads SVD spectrum of this head, atlas statistics of this head
    th = latest_run(app_runs[0], "talking-heads")
    sv = page.evaluate("() => Array.from(document.querySelector('#section-talking-heads .js-plotly-plot')._fullData[0].y)")
    np.testing.assert_allclose(sv, th.arrays["ov_singular_values"][layer, head], rtol=1e-5)
    atlas = latest_run(app_runs[0], "attention-atlas")
    assert f"{atlas.arrays['first_token_attn'][layer, head]:.3g}" in page.locator("#section-attention-atlas").inner_text()
    # only this model's runs: every section links to a run of tiny-llama
    for href in page.locator(".profile-section h3 a").evaluate_all("els => els.map(e => e.getAttribute('href'))"):
        run = href.split("run=")[1].split("&")[0]
        assert any(Path(m["path"]).name == run and m["model"]["id"] == "tiny-llama" for m in list_runs(app_runs[0]))
    g = _graph_data(page, "#section-ioi-reuse " + GRAPH)
    assert [head - 0.5, head + 0.5, layer - 0.5, layer + 0.5] in g["layout"]["shapes"]
    _shot(page, artifacts_dir, "head-profile")


def test_lab_run_end_to_end_then_cancel(server, page, app_runs, tiny_llama, artifacts_dir):
    from interp.patching import activation_patch_heads, logit_diff_metric

    base, app = server
    page.set_default_timeout(60000)
    page.goto(f"{base}/lab")
    page.wait_for_selector("#lab-run")
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupt = "When Mary and John went to the store, Mary gave a drink to"
    page.fill("#lab-clean", clean)
    page.fill("#lab-corrupt", corrupt)
    page.fill("#lab-answer", " Mary")
    page.fill("#lab-distractor", " John")
    page.click("#lab-run")
    page.wait_for_selector("#lab-summary", timeout=90000)
    ct, rt = tiny_llama.to_tokens(clean), tiny_llama.to_tokens(corrupt)
    a, d = tiny_llama.to_single_token(" Mary"), tiny_llama.to_single_token(" John")
    with torch.no_grad():
        logits = tiny_llama(ct)[0, -1]
    assert f"clean {float(logits[a] - logits[d]):+.3f}" in page.locator("#lab-summary").inner_text()
    ref = activation_patch_heads(tiny_llama, ct, rt, logit_diff_metric(torch.tensor([a]), torch.tensor([d]))).normalised.numpy()
    page.wait_for_selector("#lab-path-patch " + GRAPH)
    act = np.array(_graph_data(page, "#lab-act-patch " + GRAPH)["data"][0]["z"], dtype=float)
    np.testing.assert_allclose(act, ref, atol=1e-4)
    path = np.array(_graph_data(page, "#lab-path-patch " + GRAPH)["data"][0]["z"], dtype=float)
    np.testing.assert_allclose(path[-1], act[-1], atol=1e-4)  # last layer: direct effect == total effect
    assert "done" in page.locator("#lab-status").inner_text()
    _shot(page, artifacts_dir, "lab")
    # a slow job (test hook: pause after each step) is cancelled: buttons come back, nothing cached
    os.environ["INTERP_LAB_STEP_DELAY"] = "1.5"
    try:
        page.fill("#lab-clean", clean.replace("store", "park"))
        page.fill("#lab-corrupt", corrupt.replace("store", "park"))
        page.click("#lab-run")
        page.wait_for_function("!document.querySelector('#lab-cancel').disabled", timeout=20000)
        page.wait_for_function("document.querySelector('#lab-step').value.includes('…')", timeout=20000)
        page.click("#lab-cancel")
        page.wait_for_function("!document.querySelector('#lab-run').disabled", timeout=20000)
    finally:
        os.environ.pop("INTERP_LAB_STEP_DELAY", None)
    assert "cancelled" in page.locator("#lab-note").inner_text()
    assert "park" not in page.locator(".lab-result").inner_text()  # the old result stays
    import diskcache

    from apps.dashboard.pages_lab import lab_key

    cache_dir = Path(app._interp_cache_dir) / "lab-results"
    with diskcache.Cache(str(cache_dir)) as cache:
        assert cache.get(lab_key("tiny-llama", clean, corrupt, " Mary", " John")) is not None
        assert cache.get(lab_key("tiny-llama", clean.replace("store", "park"), corrupt.replace("store", "park"), " Mary", " John")) is None
    # an unequal pair is refused next to the form
    page.fill("#lab-corrupt", "Mary gave")
    page.click("#lab-run")
    page.wait_for_selector("#lab-status .error-message")
    assert "same length" in page.locator("#lab-status").inner_text()
    assert page.locator("#lab-run").count() == 1


def test_consistency_exact_tokens_axes_labels_and_form_errors(server, page, app_runs, artifacts_dir):
    base, _ = server
    page.set_default_timeout(60000)  # a busy shared 2-core machine
    atlas = latest_run(app_runs[0], "attention-atlas")
    toks = atlas.tables["tokens"]["token"]
    low = toks.str.strip().str.lower()
    multi = [w for w in low.value_counts().index if w and toks[low == w].nunique() > 1]
    forms = toks[low == multi[0]].value_counts() if multi else toks.value_counts()[:1]
    form, n = str(forms.index[0]), int(forms.iloc[0])
    page.goto(f"{base}/search")
    page.fill("#search-token", form)
    page.press("#search-token", "Enter")
    page.wait_for_selector("#search-results " + GRAPH)
    text = page.locator("#search-results").inner_text()
    assert f"{n} occurrences of {form!r}" in text
    if multi:  # the other spellings are offered, each with its own count
        assert f"{str(forms.index[1])!r} ({int(forms.iloc[1])})" in page.locator(".token-variants").inner_text()
    # obsprop heatmaps: hover names the head once ('L1H2'), layer 0 at the top of every layer map
    page.goto(f"{base}/analysis/obsprop")
    page.wait_for_selector(".analysis-page .figure " + GRAPH)
    n_figs = page.locator(".analysis-page .figure").count()
    page.wait_for_function(f"document.querySelectorAll('.analysis-page .figure {GRAPH}').length === {n_figs}")
    for i in range(n_figs):
        g = _graph_data(page, f"#figure-{i} {GRAPH}")
        for tr in g["data"]:
            if tr["type"] == "heatmap":
                assert "LL" not in (tr["hovertemplate"] or "")
                key = "yaxis" + tr["yaxis"][1:]
                assert g["layout"]["yaxes"].get(key) == "reversed", (i, key)
    # a prompt over the token limit: the error sits under the form, which stays
    page.goto(f"{base}/sentence?text=" + "word%20" * 120)
    page.wait_for_selector("#sentence-output .error-message")
    assert "tokens" in page.locator("#sentence-output").inner_text()
    assert page.locator("#prompt").count() == 1 and page.locator("#prompt-run").count() == 1
    _shot(page, artifacts_dir, "sentence-too-long")
