# Copyright (c) mmprockd contributors. All rights reserved.
"""Dataset converters; a package so that tools/demo*.py import them."""
