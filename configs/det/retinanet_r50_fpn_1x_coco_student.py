# Plain-student baseline for configs/prockd_retinanet_coco.py: mmdet's
# RetinaNet-R50 1x unchanged (36.5 mAP in mmdet's model zoo). Trained with
# our tools/train.py so both rows come from the same code and stack.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
