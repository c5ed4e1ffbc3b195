# The ProC-KD flagship, at the path users train it by:
#
#     python tools/train.py configs/prockd_retinanet_coco.py
#
# an ImageNet-1k Swin-T (frozen) teaches RetinaNet-R50 on COCO with our
# two-stage recipe in one run (36 epochs). The config itself, with what it
# does phase by phase, is det/prockd_swin-t_retinanet_r50_fpn_36e_coco.py;
# this file adds nothing to it, and its work dir stays
# work_dirs/prockd_retinanet_coco/.
_base_ = ['./det/prockd_swin-t_retinanet_r50_fpn_36e_coco.py']
