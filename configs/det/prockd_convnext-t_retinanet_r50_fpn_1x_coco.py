# Recipe: another teacher. The paper's recipe on the flagship pair with the
# frozen ImageNet ConvNeXt-T instead of the Swin-T. `_delete_` replaces the
# teacher as a whole, so no Swin key (pad_small_map, window settings) leaks
# into the ConvNeXt.
_base_ = [
    './prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py',
    '../_base_/teachers/convnext-t_in1k.py',
]

model = dict(teacher=dict(_base_.convnext_t_in1k_teacher, _delete_=True))
