import pytest

from mmprockd.engine.hooks import DistillScheduleHook


def test_iteration_warmup_and_stop():
    hook = DistillScheduleHook(warmup=4, stop=10)
    scales = [hook.scale_at(i, 0, 100) for i in (0, 1, 3, 4, 9, 10, 50)]
    assert scales == [0.25, 0.5, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_epoch_warmup_and_stop():
    hook = DistillScheduleHook(warmup=2, stop=3, by_epoch=True)
    # 10 iterations an epoch: epoch 0 iter 5 is position 0.5 of 2
    assert hook.scale_at(5, 0, 10) == 0.25
    assert hook.scale_at(15, 1, 10) == 0.75
    assert hook.scale_at(25, 2, 10) == 1.0
    assert hook.scale_at(30, 3, 10) == 0.0


def test_no_schedule_is_always_one():
    assert DistillScheduleHook().scale_at(12345, 7, 3) == 1.0


def test_negative_values_are_refused():
    with pytest.raises(ValueError, match='warmup and stop must be >= 0'):
        DistillScheduleHook(warmup=-1)


def test_kl_curriculum_by_iteration():
    """KL off before kl_start, then a linear ramp over kl_warmup."""
    hook = DistillScheduleHook(warmup=4, kl_start=10, kl_warmup=4)
    kl = [hook.kl_scale_at(i, 0, 100) for i in (0, 9, 10, 11, 13, 14, 99)]
    assert kl == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 1.0]
    # the common factor is not changed by the KL's own schedule
    assert hook.scale_at(9, 0, 100) == 1.0
    assert DistillScheduleHook(kl_start=3).kl_scale_at(3, 0, 1) == 1.0


def test_kl_curriculum_by_epoch():
    hook = DistillScheduleHook(by_epoch=True, kl_start=2, kl_warmup=2)
    assert hook.kl_scale_at(15, 1, 10) == 0.0
    assert hook.kl_scale_at(25, 2, 10) == 0.25  # 0.5 epoch into the ramp
    assert hook.kl_scale_at(45, 4, 10) == 1.0


def _runner(model, iteration, hub):
    """A runner stand-in with what the hook reads: 10 iterations an epoch."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    return SimpleNamespace(
        model=model,
        iter=iteration,
        epoch=0,
        train_dataloader=[0] * 10,
        message_hub=MessageHub.get_instance(hub))


def test_kl_curriculum_sets_the_models_kl_scale():
    from types import SimpleNamespace

    model = SimpleNamespace(distill_scale=None, kl_scale=None)
    runner = _runner(model, 5, 'kl_curriculum_test')
    DistillScheduleHook(kl_start=4, kl_warmup=4).before_train_iter(runner, 0)
    assert model.distill_scale == 1.0 and model.kl_scale == 0.5
    model.kl_scale = None  # without a KL schedule the hook leaves it alone
    DistillScheduleHook().before_train_iter(runner, 0)
    assert model.kl_scale is None


def test_negative_kl_schedule_is_refused():
    with pytest.raises(ValueError, match='kl_start and kl_warmup'):
        DistillScheduleHook(kl_start=-1)


def test_branch_stop_freezes_the_branch_from_that_iteration_on():
    """[ours] branch_stop: the hook sets model.branch_frozen from the given
    iteration (or epoch) on, and only when it changes."""
    from types import SimpleNamespace

    class Model(SimpleNamespace):
        sets = 0

        @property
        def branch_frozen(self):
            return self.__dict__.get('_frozen', False)

        @branch_frozen.setter
        def branch_frozen(self, value):
            Model.sets += 1
            self.__dict__['_frozen'] = value

    model = Model(distill_scale=None, learner=object())
    runner = _runner(model, 0, 'branch_stop_test')
    hook = DistillScheduleHook(warmup=2, branch_stop=3)
    hook.before_train(runner)
    frozen = []
    for it in range(6):
        runner.iter = it
        hook.before_train_iter(runner, it)
        frozen.append(model.branch_frozen)
    assert frozen == [False, False, False, True, True, True]
    assert Model.sets == 1
    by_epoch = DistillScheduleHook(by_epoch=True, branch_stop=2)
    assert [by_epoch.branch_frozen_at(25, e) for e in (1, 2, 3)] == \
        [False, True, True]
    assert DistillScheduleHook().branch_frozen_at(10**6, 10**3) is False


def test_branch_stop_is_refused_without_a_branch_or_below_zero():
    from types import SimpleNamespace
    with pytest.raises(ValueError, match='branch_stop must be >= 0'):
        DistillScheduleHook(branch_stop=-1)
    runner = SimpleNamespace(
        model=SimpleNamespace(learner=None, branch_frozen=False))
    with pytest.raises(ValueError, match='needs a ProtoDistiller with a'):
        DistillScheduleHook(branch_stop=5).before_train(runner)


def test_student_start_pauses_the_student_and_restarts_the_warmup():
    """[ours] student_start: paused before it; the distillation warm-up
    starts again at it, over student_warmup (by iteration and by epoch)."""
    hook = DistillScheduleHook(
        warmup=4, student_start=10, student_warmup=2, branch_stop=10)
    assert [hook.student_paused_at(i, 0) for i in (0, 9, 10, 11)] == \
        [True, True, False, False]
    scales = [hook.scale_at(i, 0, 100) for i in (0, 3, 9, 10, 11, 40)]
    assert scales == [0.25, 1.0, 1.0, 0.5, 1.0, 1.0]
    # without student_warmup the student phase ramps over warmup
    assert DistillScheduleHook(
        warmup=4, student_start=10).scale_at(11, 0, 100) == 0.5
    by_epoch = DistillScheduleHook(
        warmup=1, by_epoch=True, student_start=2, student_warmup=2)
    assert by_epoch.student_paused_at(19, 1) and \
        not by_epoch.student_paused_at(20, 2)
    assert by_epoch.scale_at(25, 2, 10) == 0.25  # 0.5 epoch into 2
    assert by_epoch.scale_at(40, 4, 10) == 1.0
    assert DistillScheduleHook().student_paused_at(0, 0) is False


@pytest.mark.parametrize('kwargs, exc, text', [
    (dict(student_start=-1), ValueError, 'student_start and student_warmup'),
    (dict(student_start=5,
          student_warmup=-2), ValueError, 'student_start and student_warmup'),
    (dict(student_start=5, branch_stop=3), ValueError,
     'branch_stop=3 comes before student_start=5'),
    (dict(student_schedule=[dict(type='LinearLR')]), ValueError,
     'student_schedule needs student_start > 0'),
    (dict(student_start=2, student_schedule=dict(type='LinearLR')), TypeError,
     'list of param scheduler configs'),
    (dict(student_start=2, student_schedule=[dict(begin=0)]), TypeError,
     'list of param scheduler configs'),
])
def test_bad_student_phase_settings_are_refused(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        DistillScheduleHook(**kwargs)


def test_student_start_sets_the_models_student_paused():
    from types import SimpleNamespace

    model = SimpleNamespace(
        distill_scale=None,
        learner=object(),
        branch_frozen=False,
        student_paused=None)
    runner = _runner(model, 0, 'student_start_test')
    hook = DistillScheduleHook(student_start=2, branch_stop=2)
    hook.before_train(runner)
    seen = []
    for it in range(4):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append((model.student_paused, model.branch_frozen))
    assert seen == [(True, False), (True, False), (False, True), (False, True)]
    plain = SimpleNamespace(learner=None, branch_frozen=False)
    with pytest.raises(ValueError, match='student_start needs a'):
        DistillScheduleHook(
            student_start=2).before_train(SimpleNamespace(model=plain))
