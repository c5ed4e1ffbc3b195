# Copyright (c) mmprockd contributors. All rights reserved.
"""Analysis tools; a package so that tools/demo*.py import them."""
