# Classification accuracy proxy, probe-then-distil, stage 2:
# Hinton et al.'s KD (softmax KL at T = 4, times T^2, weight 1, plus the
# student's cross-entropy) from the frozen stage-1 probe
# (probe_mobilenetv2_linear_1000i_fmnist-64px.py: a linear head on the frozen
# ImageNet MobileNetV2, trained on the same 500 images) into the student.
# The usual KD setting, not tuned. tools/analysis_tools/proxy_benchmark.py
# sets teacher_ckpt to the probe run of the same seed.
_base_ = ['./resnet18-tiny_1000i_fmnist-64px_student.py']

model = dict(
    _delete_=True,
    type='mmprockd.LogitKDDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/probe_mobilenetv2_linear_1000i_fmnist-64px.py',
    teacher_ckpt='work_dirs/proxy_cls/probe/seed0/iter_500.pth',
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=4.0,
        detach_target=True,
        loss_weight=1.0))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    dict(
        type='mmprockd.DistillScheduleHook',
        warmup={{_base_.warmup_iters}},
        by_epoch=False),
]
