# Shared by every ProC-KD config: import mmprockd, save student-only
# checkpoints as training goes, and schedule the distillation losses.
#
# The hooks are in `prockd_hooks`, not in `custom_hooks`, so that this base
# composes with any upstream base that has its own `custom_hooks` (mmengine
# refuses a key defined by two bases). A config that inherits this base
# adds them to whatever its other bases give (the `_base_` variable is
# readable in a config's own code):
#
#     custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
#
# mmprockd's tools/train.py also appends any of them that a config forgot.
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
prockd_hooks = [
    # student_{epoch,iter}_N.pth + student_config.py, loadable by plain
    # mmdet/mmseg/mmpretrain; counts epochs or iterations like the train loop
    dict(type='mmprockd.StudentCheckpointHook', interval=1),
    # distillation losses ramp in over the first 500 iterations, like the
    # task's own LR warm-up, so that an untrained prototype branch does not
    # push the student around at the start
    dict(type='mmprockd.DistillScheduleHook', warmup=500, by_epoch=False),
]
