# Plain-student baseline for the ProC-KD DeepLabV3-R18 row: mmseg's own
# config, unchanged. mmseg's model zoo reports 76.70 mIoU (Cityscapes val,
# single scale) for it.
_base_ = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'
