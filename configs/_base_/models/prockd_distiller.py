# The ProC-KD distiller with the paper's recipe, shared by the configs: one
# edit here changes every config that builds on it. A config fills in what
# depends on its student and teacher, and overrides in code:
#
#     model = dict(
#         _base_.prockd_distiller,
#         _delete_=True,  # replaces the student base's `model`
#         student=_base_.model,
#         teacher=_base_.swin_t_in1k_teacher,
#         student_channels=[256] * 5,
#         learner=dict(_base_.prockd_distiller.learner, channels=256))
prockd_distiller = dict(
    type='mmprockd.ProtoDistiller',
    learner=dict(
        type='mmprockd.PrototypeLearner',
        # the student's level width (set per config): with it equal, the
        # level adapter is the identity
        channels=256,
        num_prototypes=72,  # authors' code
        share_prototypes=True),
    augment=dict(type='mmprockd.TaskAdaptiveAugment', temperature=1.0),
    proto_weight=1.0,
    kl_loss=dict(
        type='mmprockd.ConsistencyKLLoss',
        temperature=1.0,
        detach_target=True,
        loss_weight=1.0))
