# ProC-KD, student-side augmentation (METHOD 3, option b): the deployed
# RetinaNet keeps a TaskAdaptiveAugment after its FPN, with a frozen copy of
# the learned prototypes (synchronised from the learner every step). Plain
# mmdet loads the student with custom_imports=['mmprockd']; the
# student_config.py written beside student checkpoints says so. Costs one
# 1x1-conv block per level at inference (see tools/analysis_tools/
# benchmark_cost.py).
_base_ = ['./prockd_swin-t_retinanet_r50_fpn_1x_coco_paper.py']

model = dict(
    student=dict(
        neck=dict(
            _delete_=True,
            type='mmprockd.AugmentedNeck',
            neck=dict(
                type='FPN',
                in_channels=[256, 512, 1024, 2048],
                out_channels=256,
                start_level=1,
                add_extra_convs='on_input',
                num_outs=5),
            augment=dict(
                type='mmprockd.TaskAdaptiveAugment', num_prototypes=72),
            share=True)))
