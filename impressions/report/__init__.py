"""The report: metrics, breakdowns, reproduction tables, figures and the rendered HTML."""
