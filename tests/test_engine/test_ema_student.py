"""With an ``EMAHook``, the student-only checkpoint holds the weights that
validation evaluates and ``epoch_N.pth`` holds: the averaged ones.
A real mmengine Runner trains a model with a ``student`` for 2 epochs.
"""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmprockd.engine.hooks import StudentCheckpointHook


class _Data(Dataset):

    def __len__(self):
        return 6

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g))


class _Distilled(BaseModel):
    """A ``student`` (linear + BN, so both parameters and buffers) and a
    part that is not exported."""

    def __init__(self):
        super().__init__()
        self.student = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        self.other = nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.student(inputs).pow(2).mean() + self.other(inputs).mean()
        return dict(loss=out) if mode == 'loss' else [out]


def _train(tmp_path, update_buffers):
    torch.manual_seed(0)
    runner = Runner(
        model=_Distilled(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='EMAHook', momentum=0.5, update_buffers=update_buffers),
            StudentCheckpointHook(interval=1),
        ],
        default_scope='mmengine',
        # what student_config.py is written from
        cfg=dict(
            model=dict(
                type='mmprockd.ProtoDistiller', student=dict(type='Linear'))))
    runner.train()
    return runner


@pytest.mark.parametrize('update_buffers', [False, True])
def test_student_checkpoint_equals_the_ema_model(tmp_path, update_buffers):
    runner = _train(tmp_path, update_buffers)
    full = torch.load(tmp_path / 'epoch_2.pth', weights_only=False)
    student = torch.load(
        tmp_path / 'student_epoch_2.pth', weights_only=True)['state_dict']
    # epoch_N.pth: EMAHook put the averaged weights into state_dict
    evaluated = {
        k[len('student.'):]: v
        for k, v in full['state_dict'].items() if k.startswith('student.')
    }
    assert set(student) == set(evaluated) == {
        '0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean',
        '1.running_var', '1.num_batches_tracked'
    }
    for key in evaluated:
        torch.testing.assert_close(student[key], evaluated[key], msg=key)
    # and they are the EMA's, not the raw weights of the trained model
    raw = runner.model.student.state_dict()
    assert not torch.equal(student['0.weight'], raw['0.weight'])
    ema = runner.hooks[[type(h).__name__ for h in runner.hooks
                        ].index('EMAHook')].ema_model.module.student
    torch.testing.assert_close(student['0.weight'], ema[0].weight.detach())
    # buffers: averaged only when the EMA averages them
    same_mean = torch.equal(student['1.running_mean'], raw['1.running_mean'])
    assert same_mean == (not update_buffers)
