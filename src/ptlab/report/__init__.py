"""Reports: Markdown / self-contained HTML with tables and matplotlib figures."""
