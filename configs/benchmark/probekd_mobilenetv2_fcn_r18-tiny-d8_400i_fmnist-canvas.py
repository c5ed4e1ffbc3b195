# Segmentation accuracy proxy, probe-then-distil, stage 2: KD
# from the frozen stage-1 probe (probe_mobilenetv2_fcn_400i_fmnist-canvas.py:
# the FCN head on the frozen ImageNet MobileNetV2, trained on the
# same canvases) into the student: a softmax KL per pixel (T = 1, weight 1,
# ignored pixels masked), ProC-KD's segmentation KL, so the two rows differ
# only in where the target comes from. Not tuned.
# tools/analysis_tools/proxy_benchmark.py sets teacher_ckpt to the probe
# run of the same seed.
_base_ = ['./fcn_r18-tiny-d8_400i_fmnist-canvas_student.py']

model = dict(
    _delete_=True,
    type='mmprockd.LogitKDDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/probe_mobilenetv2_fcn_400i_fmnist-canvas.py',
    teacher_ckpt='work_dirs/proxy_seg/probe/seed0/iter_400.pth',
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        loss_weight=1.0))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    dict(type='mmprockd.DistillScheduleHook', warmup=40, by_epoch=False),
]
