"""The few lines ``ceir demo`` and ``ceir report`` print when they finish."""

from __future__ import annotations

from typing import Any


def summary_lines(results: dict[str, Any]) -> list[str]:
    evaluation = results["evaluation"]
    lines = [f"{'representation':<16} {'NMI':>13} {'ACC':>13} {'ARI':>13}"]
    for space, m in evaluation["metrics"].items():
        lines.append(
            f"{space:<16} {m['nmi_mean']:.3f} ± {m['nmi_std']:.3f} {m['acc_mean']:.3f} ± {m['acc_std']:.3f} "
            f"{m['ari_mean']:.3f} ± {m['ari_std']:.3f}"
        )
    lines.append("")
    lines.append("clusters (named by their dominant concepts):")
    for c in evaluation["clusters"]:
        lines.append(f"  {c['cluster']:>2} [{c['size']:>4}] {c['name']:<45} majority: {c.get('majority_class')}"
                     f" ({c['purity']:.0%})")
    if "explain_precision_at_5" in evaluation:
        lines.append(f"explanation precision@5 vs true concepts: {evaluation['explain_precision_at_5']:.3f}")
    queries = results.get("queries")
    if queries:
        expr = queries["concept_expression"]
        edit = queries["edited_example"]
        text = queries["text"]
        # A query the concept set cannot build is {"skipped": why} (see demo/queries.py).
        for skipped in (q["skipped"] for q in (text, expr, edit) if "skipped" in q):
            lines.append(f"skipped: {skipped}")
        if "skipped" not in text:
            lines.append(f"text query {text['query']!r}: {text['share_with_both_concepts']:.0%} of the top "
                         f"{queries['k']} show both")
        if "skipped" not in expr:
            lines.append(f"concept query {expr['query']!r}: precision@{queries['k']} {expr['precision_at_k']:.2f}")
        if "skipped" not in edit:
            lines.append(
                f"edited example (remove {edit['edit']['remove'][0]!r}, add {edit['edit']['add'][0]!r}): results "
                f"with the added concept {edit['before']['share_added']:.0%} -> {edit['after']['share_added']:.0%}"
            )
    if "total_seconds" in results:
        lines.append(f"total: {results['total_seconds']:.0f} s")
    return lines
