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


def test_kl_curriculum_sets_the_models_kl_scale():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    model = SimpleNamespace(distill_scale=None, kl_scale=None)
    runner = SimpleNamespace(
        model=model,
        iter=5,
        epoch=0,
        train_dataloader=[0] * 10,
        message_hub=MessageHub.get_instance('kl_curriculum_test'))
    DistillScheduleHook(kl_start=4, kl_warmup=4).before_train_iter(runner, 0)
    assert model.distill_scale == 1.0 and model.kl_scale == 0.5
    model.kl_scale = None  # without a KL schedule the hook leaves it alone
    DistillScheduleHook().before_train_iter(runner, 0)
    assert model.kl_scale is None


def test_negative_kl_schedule_is_refused():
    with pytest.raises(ValueError, match='kl_start and kl_warmup'):
        DistillScheduleHook(kl_start=-1)
