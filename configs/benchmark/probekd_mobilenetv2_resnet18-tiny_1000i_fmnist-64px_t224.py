# Classification accuracy proxy, probe-then-distil stage 2 with the teacher
# at 224 px [ours]: Hinton's KD (T 4, weight 1) from the frozen probe of
# probe_mobilenetv2_linear_1000i_fmnist-64px_t224.py, which sees the student's
# 64 px batch upsampled by 3.5 (``teacher_input_scale``; bilinear on the
# normalised batch, where stage 1 resized the uint8 image: the same to
# rounding). tools/analysis_tools/proxy_benchmark.py sets teacher_ckpt to the
# probe run of the same seed.
_base_ = ['./probekd_mobilenetv2_resnet18-tiny_1000i_fmnist-64px.py']

model = dict(
    teacher='{{fileDirname}}/'
    'probe_mobilenetv2_linear_1000i_fmnist-64px_t224.py',
    teacher_input_scale=3.5)
