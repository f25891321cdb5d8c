"""Self-contained HTML reports (figures embedded, no external assets)."""

from ceir_sdk.report.html import Figure, ImageGrid, Report, Section, Table

__all__ = ["Figure", "ImageGrid", "Report", "Section", "Table"]
