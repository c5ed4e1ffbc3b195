# The flagship pair, shared by the flagship config and its paper twin: an
# ImageNet-1k Swin-T classifier (frozen, never fine-tuned) teaches a
# RetinaNet-R50 detector on COCO. Student, data and 1x schedule are exactly
# mmdet's retinanet_r50_fpn_1x_coco, so the plain student row (36.5 mAP in
# mmdet's model zoo) is the baseline. The distiller is the paper's recipe;
# configs/det/prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py pins it, and
# configs/prockd_retinanet_coco.py (the flagship) adds our recipe to it.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    './prockd_runtime.py',
    './teachers/swin-t_in1k.py',
    './models/prockd_distiller.py',
]

model = dict(
    _base_.prockd_distiller,  # the paper's recipe, K = 72, KL weight 1
    _delete_=True,
    student=_base_.model,
    teacher=_base_.swin_t_in1k_teacher,
    # P3-P7 of RetinaNet's FPN; the learner's width = the FPN's, so no level
    # adapter is needed. The KL is the per-anchor Bernoulli KL, summed over 9
    # anchors x 80 classes; once the head's prior bias is set
    # (init_weights) it starts near 0 and stays a few percent of the focal
    # loss at weight 1 (the proxy benchmark's weight ablation is in
    # docs/benchmark.md)
    student_channels=[256, 256, 256, 256, 256])

# the shared hooks after any the upstream bases bring
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
