# Copyright (c) mmprockd contributors. All rights reserved.
"""Accuracy proxy benchmark: is the student better with ProC-KD?

Trains the tiny students of ``configs/benchmark/`` on Fashion-MNIST
canvases (``--task det``: a RetinaNet; ``--task seg``: an FCN on their
label maps) or 64 px images (``--task cls``: a ResNet classifier), with
the rows of ``proxy/rows.py`` at the same budget, for several seeds, and
evaluates each student with the task's mmdet, mmseg or mmpretrain metric.
Every run is a fresh process driving mmengine's Runner; its metrics and
loss curve are written to ``<work-dir>/<row>/seed<k>/result.json``, and
finished runs are skipped when the command is run again. The table (mean
and sample std over seeds, paired gains) is printed and written to
``<work-dir>/table_<split>.md``.

Usage (one table of docs/benchmark.md, 5 seeds; the data is built from
the Fashion-MNIST IDX files when missing)::

    python tools/analysis_tools/proxy_benchmark.py --table det_n100 \\
        --fmnist /tmp/fmnist/usr/share/datasets/fashion-mnist

``--table det_n100_mini`` needs no ``--fmnist``: it composes its canvases
from the embedded items (``data/fmnist_mini/fmnist_mini.npz``), about 10
minutes on 2 cores. A row ``ROW@ITERS`` is a row at another schedule in
the same work dir. Without ``--table``, ``--task`` runs the task's default
rows at the reduced size; ``--full`` is the GPU size (bigger canvases and
data, more iterations); ``--smoke`` is 2 iterations of one run on one seed
(tests).
"""
from proxy.cli import main, parse_args  # noqa: F401  (the docs' tests)

if __name__ == '__main__':
    main()
