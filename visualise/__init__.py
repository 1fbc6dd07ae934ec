"""Offline HTML reports: ``make eda`` (the catalogue and the downloaded images) and ``make visualise`` (a run).

Both reports are one self-contained HTML file (inline CSS and JavaScript, pictures embedded as base64) plus a
JSON file holding every number the page shows; the same inputs and seed give byte-identical files.
"""
