# The flagship with the cost lever: the teacher, the prototype branch and
# the KL see a quarter of the images (an expected 2 of mmdet's 8 per GPU in
# the benchmark, 0.5 of its 2 per GPU in training: half of the steps distil
# one image, the others skip the teacher). The student's own loss still sees
# every image. The cost and the proxy-accuracy price of this are measured in
# docs/benchmark.md; the authors' recipe is prockd_retinanet_coco.py.
_base_ = ['./prockd_retinanet_coco.py']

model = dict(distill_fraction=0.25)
