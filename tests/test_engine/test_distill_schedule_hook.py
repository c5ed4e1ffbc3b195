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
