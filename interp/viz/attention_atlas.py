"""Figures of the attention atlas: matrix of every head, one head's joint embedding,
per-head statistics, and attention of a single input (sentence view).

All builders are pure functions of an `AtlasResult` (or of plain arrays for the sentence
view), shared by the dashboard and the notebook.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

KIND = "attention-atlas"
Q_COLOUR, K_COLOUR = "#1b9e77", "#e7298a"  # queries green, keys pink (as in AttentionViz)
COLOR_BY = ("type", "position", "norm", "sequence", "token type")
TOKEN_TYPES = ("first token", "punctuation", "number", "word start", "word piece")


FRAME_PERCENTILES = (1.0, 99.0)


def _frame(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A head's cell frame: the 1st-99th percentile box of its points, padded by 5%."""
    lo, hi = np.percentile(xy, FRAME_PERCENTILES, axis=0)
    pad = np.where(hi - lo > 0, hi - lo, 1.0) * 0.05
    return lo - pad, hi + pad


def _cell(xy: np.ndarray, frame: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points scaled into the unit square of their frame, and which of them lie outside it.

    Points outside the frame (far-away keys such as attention sinks) are drawn ON the
    frame's edge and flagged, never dropped or silently clipped."""
    lo, hi = _frame(xy) if frame is None else frame
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    unit = (xy - lo) / span
    outside = ((unit < 0) | (unit > 1)).any(axis=1)
    return np.clip(unit, 0, 1), outside


def _sample(n_tokens: int, max_points: int, seed: int = 0) -> np.ndarray:
    if n_tokens <= max_points:
        return np.arange(n_tokens)
    return np.sort(np.random.default_rng(seed).choice(n_tokens, max_points, replace=False))


def matrix_points(result, method: str = "pca") -> tuple[np.ndarray, np.ndarray]:
    """([layer, head, 2m, 2] points, token index of each of the m tokens) for a matrix view.

    PCA: every token of the run. t-SNE / UMAP: the run's ``<method>_matrix`` on its token
    subsample (``matrix_tokens``); KeyError when the run has none."""
    if method == "pca":
        pts = result.arrays["pca"]
        return pts, np.arange(pts.shape[2] // 2)
    key = f"{method}_matrix"
    if key not in result.arrays:
        raise KeyError(f"this run has no {method} matrix (full runs store {method} of every head when matrix_methods has it)")
    return result.arrays[key], np.asarray(result.arrays["matrix_tokens"])


def matrix_methods(result) -> list[str]:
    """Projections this run can show as a matrix."""
    return ["pca"] + [m for m in ("tsne", "umap") if f"{m}_matrix" in result.arrays]


def matrix_sampling_text(result, max_points: int = 120, method: str = "pca") -> str:
    """What the matrix view draws, in words."""
    pts, tok = matrix_points(result, method)
    m = len(tok)
    n_seqs = result.arrays["tokens"].shape[0]
    shown = min(m, max_points)
    base = (f"{method.upper()} of {m} tokens per head" + ("" if method == "pca" else f" (a seeded sample of the run's {result.n_tokens} tokens)"))
    samp = "all of them" if shown == m else f"{shown} of them drawn per head (seeded uniform sample, the same tokens in every head)"
    return (f"{base}; {samp}; plus the first-token key of each of the {n_seqs} sequences (dark diamonds, possible attention "
            f"sinks). Each cell's frame is its points' {FRAME_PERCENTILES[0]:g}th-{FRAME_PERCENTILES[1]:g}th percentile box; points "
            "beyond it are drawn on the edge and ringed in black, not dropped.")


def matrix_figure(result, max_points: int = 120, highlight: np.ndarray | None = None, height: int | None = None,
                  method: str = "pca") -> go.Figure:
    """Every head's joint embedding as a small scatter on a layer x head grid.

    Traces, in order: queries and keys (``max_points`` sampled tokens each), search hits
    (when ``highlight``, a boolean mask over tokens, is given), the first-token keys of every
    sequence, and rings on every drawn point that lies outside its cell's frame. Point
    customdata is ``layer * n_heads + head`` so a click can open that head. ``method``:
    'pca' or a nonlinear matrix stored by the run ('tsne' / 'umap').
    """
    pts, tok = matrix_points(result, method)
    L, H, two_m, _ = pts.shape
    m = two_m // 2
    idx = _sample(m, max_points)
    p = result.arrays["tokens"].shape[1]
    firsts = np.where(tok % p == 0)[0]  # rows (in this matrix) of first tokens
    traces: dict[str, list] = {name: [[], [], []] for name in ("Q", "K", "hit", "sink", "out")}
    if highlight is not None:
        hit_tok = np.where(highlight)[0]
        hits = np.where(np.isin(tok, hit_tok))[0]
    else:
        hits = np.array([], dtype=int)
    for layer in range(L):
        for head in range(H):
            cell, outside = _cell(pts[layer, head])
            cell = cell * 0.86 + 0.07
            x0, y0 = head, L - 1 - layer
            drawn = []
            for name, rows in (("Q", idx), ("K", m + idx), ("hit", np.concatenate([hits, m + hits])), ("sink", m + firsts)):
                if len(rows) == 0:
                    continue
                drawn.append(rows)
                traces[name][0].append(x0 + cell[rows, 0])
                traces[name][1].append(y0 + cell[rows, 1])
                traces[name][2].append(np.full(len(rows), layer * H + head))
            out_rows = np.unique(np.concatenate(drawn))
            out_rows = out_rows[outside[out_rows]]
            if len(out_rows):
                traces["out"][0].append(x0 + cell[out_rows, 0])
                traces["out"][1].append(y0 + cell[out_rows, 1])
                traces["out"][2].append(np.full(len(out_rows), layer * H + head))
    fig = go.Figure()
    style = {"Q": dict(color=Q_COLOUR, size=2.5, opacity=0.6), "K": dict(color=K_COLOUR, size=2.5, opacity=0.6),
             "hit": dict(color="black", size=4.5, opacity=0.85),
             "sink": dict(color="#7a0177", size=5, symbol="diamond", opacity=0.9),
             "out": dict(color="rgba(0,0,0,0)", size=7, symbol="circle-open", line=dict(color="black", width=1))}
    labels = {"Q": "queries", "K": "keys", "hit": "search hits", "sink": "first-token keys",
              "out": "outside the frame (drawn at its edge)"}
    for name, (xs, ys, cd) in traces.items():
        if not xs:
            continue
        fig.add_trace(go.Scattergl(
            x=np.concatenate(xs), y=np.concatenate(ys), customdata=np.concatenate(cd).tolist(), mode="markers",
            marker=style[name], name=labels[name],
            hovertemplate="head %{customdata} (layer x " + str(H) + " + head)<extra>" + labels[name] + "</extra>",
        ))
    grid = dict(showgrid=False, zeroline=False)
    fig.update_xaxes(range=[0, H], tickvals=np.arange(H) + 0.5, ticktext=[f"H{h}" for h in range(H)], side="top", **grid)
    fig.update_yaxes(range=[0, L], tickvals=np.arange(L) + 0.5, ticktext=[f"L{layer}" for layer in range(L - 1, -1, -1)], **grid)
    shapes = [dict(type="rect", x0=h + 0.02, x1=h + 0.98, y0=r + 0.02, y1=r + 0.98, line=dict(color="#ddd", width=1))
              for h in range(H) for r in range(L)]
    fig.update_layout(
        shapes=shapes, height=height or max(320, 26 + 70 * L), plot_bgcolor="white", margin=dict(l=40, r=10, t=40, b=10),
        legend=dict(orientation="h", y=-0.02), title=None, clickmode="event",
        meta={"sampling": matrix_sampling_text(result, max_points, method)},
    )
    return fig


def token_type(tok: str, pos: int) -> str:
    """Coarse class of a token string (for colouring)."""
    s = tok.strip()
    if pos == 0:
        return "first token"
    if s and all(not ch.isalnum() for ch in s):
        return "punctuation"
    if s.isdigit():
        return "number"
    if tok[:1] in (" ", "\n", "\t", "Ġ", "▁") or not s:
        return "word start"
    return "word piece"


def _hover(contexts: list[str], kind: str, seqs: np.ndarray, poss: np.ndarray) -> list[str]:
    out = []
    for c, s, p in zip(contexts, seqs, poss, strict=True):
        c = html.escape(c).replace("\n", "⏎").replace("[[", "<b>").replace("]]", "</b>")
        out.append(f"{kind} · seq {s} · pos {p}<br>{c}")
    return out


def head_figure(
    result,
    layer: int,
    head: int,
    xy: np.ndarray | None = None,
    method: str = "pca",
    color_by: str = "type",
    query: int | None = None,
    highlight: np.ndarray | None = None,
) -> go.Figure:
    """One head's joint query-key embedding; ``query`` (token index) draws its attention.

    ``xy`` overrides the stored projection (e.g. a t-SNE computed by the dashboard).
    Point customdata is the token index for queries and ``-1 - index`` for keys.
    """
    return go.Figure(head_figure_dict(result, layer, head, xy, method, color_by, query, highlight))


_LABEL_CACHE: dict[int, tuple[object, dict]] = {}


def _token_labels(result) -> dict:
    """Hover texts and token types of a result's tokens (memoised per result object)."""
    hit = _LABEL_CACHE.get(id(result))
    if hit is not None and hit[0] is result:
        return hit[1]
    toks = result.tables["tokens"]
    seqs, poss = toks["seq"].to_numpy(), toks["pos"].to_numpy()
    out = {"seqs": seqs, "poss": poss, "tokens": toks["token"].tolist(),
           "hover": {k: _hover(toks["context"].tolist(), k, seqs, poss) for k in ("query", "key")},
           "types": [token_type(x, int(ps)) for x, ps in zip(toks["token"], poss, strict=True)]}
    if len(_LABEL_CACHE) > 16:
        _LABEL_CACHE.clear()
    _LABEL_CACHE[id(result)] = (result, out)
    return out


def head_figure_dict(
    result, layer: int, head: int, xy: np.ndarray | None = None, method: str = "pca", color_by: str = "type",
    query: int | None = None, highlight: np.ndarray | None = None,
) -> dict:
    """`head_figure` as a plain plotly dict (no validation: the dashboard's fast path)."""
    if color_by not in COLOR_BY:
        raise ValueError(f"unknown colouring {color_by!r}; choose from {', '.join(COLOR_BY)}")
    if xy is None:
        xy = result.projection(layer, head, method)
        if xy is None:
            raise ValueError(f"no {method} projection stored for L{layer}H{head}")
    lab = _token_labels(result)
    n, p = result.arrays["tokens"].shape
    t = n * p
    norms = {"query": result.arrays["q_norm"][layer, head], "key": result.arrays["k_norm"][layer, head]}
    data: list[dict] = []
    layout: dict = dict(
        height=620, plot_bgcolor="white", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.05),
        title=dict(text=f"L{layer}H{head} · {method.upper()} · coloured by {color_by}"), uirevision=f"{layer}-{head}-{method}",
        clickmode="event", xaxis=dict(showticklabels=False, zeroline=False, showgrid=False),
        yaxis=dict(showticklabels=False, zeroline=False, showgrid=False, scaleanchor="x"), annotations=[],
    )
    for kind, sl, symbol, colour in (("query", slice(0, t), "circle", Q_COLOUR), ("key", slice(t, 2 * t), "diamond", K_COLOUR)):
        marker: dict = dict(size=5, symbol=symbol, opacity=0.75, line=dict(width=0))
        if color_by == "type":
            marker["color"] = colour
        elif color_by == "token type":
            palette = dict(zip(TOKEN_TYPES, ("#000000", "#d95f02", "#7570b3", "#1f78b4", "#a6cee3"), strict=True))
            marker["color"] = [palette[x] for x in lab["types"]]
        else:
            vals = {"position": lab["poss"], "norm": norms[kind], "sequence": lab["seqs"]}[color_by]
            marker.update(color=np.asarray(vals).tolist(), colorscale="Viridis" if kind == "query" else "Plasma",
                          colorbar=dict(title=dict(text=f"{color_by}<br>({kind[0].upper()})"), x=1.02 if kind == "query" else 1.14, len=0.8))
        data.append(dict(
            type="scattergl", x=xy[sl, 0].tolist(), y=xy[sl, 1].tolist(), mode="markers", marker=marker,
            name=f"{'queries' if kind == 'query' else 'keys'} ({symbol})", hovertext=lab["hover"][kind], hoverinfo="text",
            customdata=(np.arange(t) if kind == "query" else -1 - np.arange(t)).tolist(),
        ))
    if highlight is not None and highlight.any():
        hits = np.where(highlight)[0]
        rows = np.concatenate([hits, t + hits])
        data.append(dict(type="scattergl", x=xy[rows, 0].tolist(), y=xy[rows, 1].tolist(), mode="markers", name="search hits",
                         marker=dict(size=10, color="rgba(0,0,0,0)", line=dict(width=2, color="black")), hoverinfo="skip"))
    if query is not None:
        _attention_lines(data, layout, result, layer, head, xy, int(query), t, p, lab["tokens"])
    return {"data": data, "layout": layout}


def _attention_lines(data: list, layout: dict, result, layer: int, head: int, xy: np.ndarray, qi: int, t: int, p: int,
                     tokens: list[str]) -> None:
    """Lines from query token ``qi`` to the keys it attends to (stored patterns only)."""
    s, pos = divmod(qi, p)
    pats = result.arrays["patterns"]
    if s >= pats.shape[2]:
        layout["annotations"].append(dict(text=f"attention stored for the first {pats.shape[2]} sequences only",
                                          showarrow=False, xref="paper", yref="paper", x=0.5, y=1.0))
        return
    w = pats[layer, head, s, pos, : pos + 1].astype(np.float32)
    order = [int(j) for j in np.argsort(w)[::-1][:16] if w[j] >= 0.01]
    bins = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.01))  # one line trace per weight band (fast)
    for lo, hi in bins:
        xs: list = []
        ys: list = []
        for j in (j for j in order if lo <= w[j] < hi):
            kj = t + s * p + j
            xs += [float(xy[qi, 0]), float(xy[kj, 0]), None]
            ys += [float(xy[qi, 1]), float(xy[kj, 1]), None]
        if xs:
            data.append(dict(type="scatter", x=xs, y=ys, mode="lines", showlegend=False, hoverinfo="skip",
                             line=dict(color=f"rgba(40,40,40,{0.3 + 0.7 * min(hi, 1.0):.2f})", width=1.5 + 8 * lo)))
    keys = [t + s * p + j for j in order]
    data.append(dict(
        type="scatter", x=xy[keys, 0].tolist(), y=xy[keys, 1].tolist(), mode="markers", name="attended keys",
        marker=dict(size=[6 + 20 * float(w[j]) for j in order], color="rgba(0,0,0,0)", line=dict(width=2, color="#333")),
        hoverinfo="text", hovertext=[f"{w[j]:.3f} → {html.escape(tokens[s * p + j])}" for j in order],
    ))
    data.append(dict(type="scatter", x=[float(xy[qi, 0])], y=[float(xy[qi, 1])], mode="markers", name="selected query",
                     marker=dict(size=14, color=Q_COLOUR, line=dict(width=2, color="black")), hoverinfo="skip"))


def stats_figure(result) -> go.Figure:
    """Per-head heatmaps: within-query r of logit with 2-D distance (main statistic), its random-
    projection control, sink, previous-token, entropy."""
    names = [("wq_pca", "within-query r(q·k, PCA distance)", "RdBu_r"), ("wq_random", "same, random 2-D projection", "RdBu_r"), ("first_token_attn", "attention to first token", "Blues"),
             ("prev_token_attn", "attention to previous token", "Greens"), ("entropy", "attention entropy (nats)", "Greys")]
    names = [n for n in names if n[0] in result.arrays]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[n[1] for n in names], horizontal_spacing=0.05)
    for i, (key, title, scale) in enumerate(names):
        z = result.arrays[key]
        L, H = z.shape
        fig.add_trace(go.Heatmap(
            z=z, x=[f"H{h}" for h in range(H)], y=[f"L{layer}" for layer in range(L)], colorscale=scale,
            zmid=0 if key.startswith(("wq_", "corr_")) else None, showscale=False,
            hovertemplate="%{y}%{x}: %{z:.3f}<extra>" + title + "</extra>",
        ), row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(300, 60 + 18 * result.arrays["corr_pca"].shape[0]), margin=dict(l=40, r=10, t=50, b=30))
    return fig


def nonlinear_figures(result) -> list[tuple[str, go.Figure]]:
    """Stored t-SNE / UMAP projections of the chosen heads."""
    out = []
    if "nonlinear_heads" not in result.arrays:
        return out
    for method in ("tsne", "umap"):
        if method not in result.arrays:
            continue
        for i, (layer, head) in enumerate(result.arrays["nonlinear_heads"]):
            fig = head_figure(result, int(layer), int(head), xy=result.arrays[method][i], method=method)
            key = f"wq_{method}" if f"wq_{method}" in result.arrays else f"corr_{method}"
            r = float(result.arrays[key][i]) if key in result.arrays else float("nan")
            out.append((f"L{layer}H{head} {method} (within-query r = {r:.2f}; t-SNE/UMAP distort global distances)", fig))
    return out


def main_figure(result) -> go.Figure:
    return matrix_figure(result)


def figures(result) -> list[tuple[str, go.Figure]]:
    mats = [(f"Every head: joint query-key {m.upper()} (queries green, keys pink). {matrix_sampling_text(result, method=m)}",
             matrix_figure(result, method=m)) for m in matrix_methods(result)]
    return [*mats, ("Per-head statistics", stats_figure(result)), *nonlinear_figures(result)]


# ---------------------------------------------------------------------- sentence view
def sentence_heatmap(str_tokens: list[str], pattern: np.ndarray, title: str = "") -> go.Figure:
    """Attention of one head on one input as a query x key heatmap."""
    labels = [f"{i}:{html.escape(s)}" for i, s in enumerate(str_tokens)]
    z = np.where(np.tril(np.ones_like(pattern, dtype=bool)), pattern, np.nan)
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="query")
    fig.update_xaxes(title="key", tickangle=-60)
    fig.update_layout(title=title, height=max(380, 120 + 22 * len(labels)), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def sentence_lines(str_tokens: list[str], pattern: np.ndarray, title: str = "", threshold: float = 0.02) -> go.Figure:
    """BertViz-style view: queries on the left, keys on the right, line opacity = weight."""
    n = len(str_tokens)
    fig = go.Figure()
    for qi in range(n):
        for kj in range(qi + 1):
            w = float(pattern[qi, kj])
            if w < threshold:
                continue
            fig.add_trace(go.Scatter(x=[0, 1], y=[qi, kj], mode="lines", showlegend=False, hoverinfo="text",
                                     hovertext=f"{html.escape(str_tokens[qi])} → {html.escape(str_tokens[kj])}: {w:.3f}",
                                     line=dict(color=f"rgba(31,119,180,{0.15 + 0.85 * w:.2f})", width=1 + 5 * w)))
    labels = [html.escape(s).replace("\n", "⏎") for s in str_tokens]
    fig.add_trace(go.Scatter(x=[0] * n, y=list(range(n)), mode="text", text=labels, textposition="middle left",
                             showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[1] * n, y=list(range(n)), mode="text", text=labels, textposition="middle right",
                             showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(range=[-0.6, 1.6], visible=False)
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_layout(title=title, height=max(300, 60 + 20 * n), plot_bgcolor="white", margin=dict(l=10, r=10, t=40, b=10))
    return fig


def layer_heatmaps(str_tokens: list[str], patterns: np.ndarray, layer: int) -> go.Figure:
    """Every head of one layer on one input: a row of small heatmaps [head, q, k]."""
    H = patterns.shape[0]
    cols = min(H, 5)
    rows = (H + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"L{layer}H{h}" for h in range(H)],
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    for h in range(H):
        z = np.where(np.tril(np.ones_like(patterns[h], dtype=bool)), patterns[h], np.nan)
        fig.add_trace(go.Heatmap(z=z, colorscale="Blues", zmin=0, zmax=1, showscale=False,
                                 customdata=np.array([[f"{str_tokens[i]!r} → {str_tokens[j]!r}" for j in range(len(str_tokens))]
                                                      for i in range(len(str_tokens))]),
                                 hovertemplate="%{customdata}: %{z:.3f}<extra>" + f"L{layer}H{h}</extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=260 * rows, margin=dict(l=10, r=10, t=40, b=10))
    return fig
