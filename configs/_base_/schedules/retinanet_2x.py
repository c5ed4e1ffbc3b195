# mmdet's RetinaNet 2x schedule (24 epochs, a 500-iteration linear warm-up,
# LR steps at 16 and 22), as a variable a config reads: the 2x config uses
# it as its param_scheduler, and the one-run flagship as the schedule of its
# student phase (DistillScheduleHook(student_schedule=...)), which counts
# from the phase's own start.
retinanet_2x_epochs = 24
retinanet_2x_schedule = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=retinanet_2x_epochs,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
