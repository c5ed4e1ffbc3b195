# Detection accuracy proxy, probe-then-distil, stage 2: plain KD from the
# frozen stage-1 probe (probe_mobilenetv2_retinanet_fpn_400i_fmnist-canvas.py:
# the same RetinaNet on the frozen ImageNet MobileNetV2, trained on the same
# canvases) into the student. The KL is ProC-KD's detection KL (per anchor and
# class Bernoulli, per-level mean, weight 1, T = 1), so the two rows differ
# only in where the target comes from: a probe trained before, or the prototype
# branch trained alongside. Not tuned. tools/analysis_tools/proxy_benchmark.py
# sets teacher_ckpt to the probe run of the same seed.
_base_ = ['./retinanet_r18-tiny_fpn_400i_fmnist-canvas_student.py']

model = dict(
    _delete_=True,
    type='mmprockd.LogitKDDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/'
    'probe_mobilenetv2_retinanet_fpn_400i_fmnist-canvas.py',
    teacher_ckpt='work_dirs/proxy_benchmark/probe/seed0/iter_400.pth',
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        loss_weight=1.0))

custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    # the KL ramps in over the LR warm-up, as in the ProC-KD configs
    dict(type='mmprockd.DistillScheduleHook', warmup=40, by_epoch=False),
]
