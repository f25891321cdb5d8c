"""PNG plots of explanations and clusters (matplotlib's object API with the Agg canvas)."""

from ceir_sdk.viz.plots import plot_clusters, plot_explanation

__all__ = ["plot_clusters", "plot_explanation"]
