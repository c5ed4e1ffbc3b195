# [ours] Few labels and many unlabelled images, the pool labelled first,
# stage 2: the branch of prockd_2stage_mobilenetv2_cls_labelpool_stage1.py,
# frozen from the first step, teaches a fresh student through Hinton's KD
# (T 4) and PKD from its features, as prockd_2stage_mobilenetv2_cls_
# unlabelled.py does, with the teacher at 224 px and the cross-entropy on
# the labelled images and the pool's propagated labels. On the 100-image
# proxy: +9.0 +- 0.4 top-1 over the student alone, level with PKD given the
# same labels (docs/benchmark.md; the stage-1 config
# says how to make the labels).
#
#     python tools/train.py \
#         configs/recipes/prockd_2stage_mobilenetv2_cls_labelpool.py \
#         [--cfg-options model.branch_ckpt=PATH]
_base_ = ['./prockd_2stage_mobilenetv2_cls_unlabelled.py']

pool_ann = 'meta/unlabelled_lp.txt'
model = dict(
    branch_ckpt='work_dirs/prockd_2stage_mobilenetv2_cls_labelpool_stage1/'
    'iter_500.pth',
    teacher=dict(input_scale=3.5))
train_dataloader = dict(
    dataset=dict(
        datasets=[_base_.labelled,
                  dict(_base_.labelled, ann_file=pool_ann)]))
