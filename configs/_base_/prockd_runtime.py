# Shared by every ProC-KD config: import mmprockd, save student-only
# checkpoints as training goes, and schedule the distillation losses.
custom_imports = dict(imports=['mmprockd'], allow_failed_imports=False)
custom_hooks = [
    # student_{epoch,iter}_N.pth + student_config.py, loadable by plain
    # mmdet/mmseg/mmpretrain; counts epochs or iterations like the train loop
    dict(type='mmprockd.StudentCheckpointHook', interval=1),
    # distillation losses ramp in over the first 500 iterations, like the
    # task's own LR warm-up, so that an untrained prototype branch does not
    # push the student around at the start
    dict(type='mmprockd.DistillScheduleHook', warmup=500, by_epoch=False),
]
