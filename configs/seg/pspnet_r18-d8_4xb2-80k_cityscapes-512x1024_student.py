# Plain-student baseline for the ProC-KD PSPNet-R18 row: mmseg's own config,
# unchanged. mmseg's model zoo reports 74.87 mIoU (Cityscapes val, single
# scale) for it; CWD reaches 75.54 from a PSPNet-R101 teacher.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
