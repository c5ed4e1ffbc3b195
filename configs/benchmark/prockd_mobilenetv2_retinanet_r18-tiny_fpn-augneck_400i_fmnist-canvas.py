# Accuracy proxy benchmark, ablation: ProC-KD with student-side
# augmentation (METHOD 3, option b). The student's FPN is wrapped in
# mmprockd.AugmentedNeck, whose TaskAdaptiveAugment carries a frozen copy of
# the learned prototypes (synchronised every step) and stays in the
# deployed student.
_base_ = ['./prockd_mobilenetv2_retinanet_r18-tiny_fpn_400i_fmnist-canvas.py']

model = dict(
    student=dict(
        neck=dict(
            _delete_=True,
            type='mmprockd.AugmentedNeck',
            neck=dict(
                type='FPN',
                in_channels=[16, 32, 64, 128],
                out_channels=32,
                start_level=1,
                add_extra_convs='on_input',
                num_outs=5),
            augment=dict(
                type='mmprockd.TaskAdaptiveAugment', num_prototypes=72),
            share=True)))
