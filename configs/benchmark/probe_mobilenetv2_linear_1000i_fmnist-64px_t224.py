# Classification accuracy proxy, probe-then-distil stage 1 with the teacher
# at its own resolution [ours]: the linear probe of
# probe_mobilenetv2_linear_1000i_fmnist-64px.py, but every image is upsampled
# from 64 to 224 px (bilinear) before the frozen ImageNet MobileNetV2, as the
# ProC-KD and PKD rows with ``teacher.input_scale=3.5`` see it. Stage 2
# (probekd_..._t224.py) gives the frozen probe the student's batch resized by
# the same factor. The backbone's outputs are cached by input content
# (``CachedFrozenBackbone``): 100 images and their flips are 200 inputs, so 500
# iterations at 224 px cost about 200 backbone passes, as the ProC-KD rows'
# ``teacher_cache`` makes theirs. A baseline for the t224 rows of
# docs/benchmark.md.
_base_ = ['./probe_mobilenetv2_linear_1000i_fmnist-64px.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmprockd.CachedFrozenBackbone',
        backbone={{_base_.model.backbone}}))
resize = dict(type='Resize', scale=(224, 224), interpolation='bilinear')
train_pipeline = [
    dict(type='LoadImageFromFile'), resize,
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'), resize,
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
