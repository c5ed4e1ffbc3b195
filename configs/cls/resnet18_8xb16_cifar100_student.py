# Plain-student baseline for the ProC-KD CNN pair: mmpretrain's CIFAR-100
# recipe (resnet50_8xb16_cifar100: 200 epochs, SGD, steps at 60/120/160)
# with the CIFAR ResNet-18 of resnet18_8xb16_cifar10 (3x3 stem, no
# max-pool, 32x32 inputs), trained from scratch.
_base_ = 'mmpretrain::resnet/resnet50_8xb16_cifar100.py'

model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
