# Copyright (c) mmprockd contributors. All rights reserved.
"""The accuracy proxy benchmark of docs/benchmark.md.

``rows`` holds the rows of the published tables, ``tables`` one preset per
table, ``run`` turns a row and a seed into a config and trains it,
``report`` prints the tables, ``cli`` is the command line of
``tools/analysis_tools/proxy_benchmark.py``.
"""
