"""``tools/test.py`` on the toy checkpoint: metrics, ``--out``,
``--show-dir``, loading a plain checkpoint into a distiller's student and a
distiller's checkpoint into a plain student, inputs never overwritten, and
the input checks.

Run: ``pytest tests/test_tools/test_test_tool.py``
"""
import glob
import os
import os.path as osp
import pickle
import re
import shutil

import pytest
import torch
from tool_runner import REPO, load_module, run_tool, toy

from mmprockd.utils.checkpoint_io import InputCheckError

test_tool = load_module(osp.join(REPO, 'tools', 'test.py'), 'test_tool')

# a stand-in for mmprockd.ProtoDistiller: wraps a classifier as `.student`
TOY_DISTILLER = '''
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ToyDistiller(BaseModel):

    def __init__(self, student, data_preprocessor=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.student = MODELS.build(student)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.student(inputs, data_samples, mode)

    def val_step(self, data):
        return self.student.val_step(data)

    def test_step(self, data):
        return self.student.test_step(data)
'''
DISTILLER_CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['mmprockd', 'toy_distiller'],
                      allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='ToyDistiller',
    student=dict(
        type='ImageClassifier',
        backbone=dict(type='LeNet5', num_classes=2),
        head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=2,
                               mean=[127.5], std=[127.5], to_rgb=False)))
'''


def _pythonpath() -> list:
    path = os.environ.get('PYTHONPATH')
    return [path] if path else []


def _accuracy(output: str) -> float:
    found = re.findall(r'Epoch\(test\).*accuracy/top1: ([\d.]+)', output)
    assert found, output[-3000:]
    return float(found[-1])


def _test(toy_run,
          tmp_path,
          *args,
          config=toy.TOY_CLS,
          ckpt=None,
          options=(),
          **env):
    ckpt = ckpt or osp.join(toy_run.work_dir, 'epoch_2.pth')
    return run_tool(
        [
            'test.py', config, ckpt, '--work-dir',
            str(tmp_path / 'work'), *args, '--cfg-options'
        ] + toy.data_root_options(toy_run.data_root) + list(options),
        cwd=str(tmp_path),
        **env)


@pytest.fixture(scope='module')
def plain_results(toy_run, tmp_path_factory):
    """test.py with --out and a relative --show-dir: (process, dumped
    predictions, the folder it ran in)."""
    tmp_path = tmp_path_factory.mktemp('test_tool')
    out = str(tmp_path / 'preds.pkl')
    proc = _test(toy_run, tmp_path, '--out', out, '--show-dir', 'vis/')
    assert proc.returncode == 0, proc.output[-3000:]
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    return proc, preds, tmp_path


def test_metric_and_out_file(plain_results):
    proc, preds, _ = plain_results
    accuracy = _accuracy(proc.output)
    assert len(preds) == 8  # one entry per toy image
    correct = sum(
        int(p['pred_label'].item() == p['gt_label'].item()) for p in preds)
    assert accuracy == pytest.approx(100.0 * correct / len(preds))
    assert accuracy >= 87.5
    assert {osp.basename(osp.dirname(p['img_path']))
            for p in preds} == {'dark', 'bright'}


def test_show_dir_saves_drawn_images_in_the_work_dir(plain_results):
    _, _, tmp_path = plain_results
    # the work dir is tmp_path/work; test.py ran in tmp_path
    assert glob.glob(str(tmp_path / 'work' / 'vis' / '*.png'))
    assert not osp.exists(tmp_path / 'vis')


def test_plain_checkpoint_loads_into_student(toy_run, plain_results, tmp_path):
    _, plain_preds, _ = plain_results
    (tmp_path / 'toy_distiller.py').write_text(TOY_DISTILLER)
    config = tmp_path / 'toy_distiller_cfg.py'
    config.write_text(DISTILLER_CONFIG.format(base=toy.TOY_CLS))
    out = str(tmp_path / 'preds.pkl')
    proc = _test(
        toy_run,
        tmp_path,
        '--out',
        out,
        config=str(config),
        PYTHONPATH=os.pathsep.join([str(tmp_path)] + _pythonpath()))
    assert proc.returncode == 0, proc.output[-3000:]
    assert 'loaded into model.student' in proc.output
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    # the same weights give the same scores as the plain classifier
    for plain, wrapped in zip(plain_preds, preds):
        assert plain['img_path'] == wrapped['img_path']
        torch.testing.assert_close(plain['pred_score'], wrapped['pred_score'])


def test_distiller_checkpoint_gives_its_student_to_a_plain_config(
        toy_run, plain_results, tmp_path):
    """A ProtoDistiller-like checkpoint (``student.*`` plus learner, augment
    and adapter weights) with the plain student config: the student's
    weights are loaded, and the scores are the plain checkpoint's."""
    _, plain_preds, _ = plain_results
    plain = torch.load(
        osp.join(toy_run.work_dir, 'epoch_2.pth'), map_location='cpu')
    state = {'student.' + k: v for k, v in plain['state_dict'].items()}
    state.update({
        'learner.prototypes': torch.randn(6, 16),
        'augment.proj.weight': torch.randn(4, 4),
        'level_adapters.0.conv.weight': torch.randn(4, 4, 1, 1),
    })
    ckpt = tmp_path / 'prockd_epoch_2.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=2)), ckpt)
    out = str(tmp_path / 'preds.pkl')
    proc = _test(toy_run, tmp_path, '--out', out, ckpt=str(ckpt))
    assert proc.returncode == 0, proc.output[-3000:]
    assert (f'{ckpt} is a ProtoDistiller checkpoint: its student.* weights '
            'are loaded, prefix stripped; the others (augment, learner, '
            'level_adapters) are left out') in proc.output
    assert 'unexpected key' not in proc.output
    assert 'missing keys' not in proc.output
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    for plain_pred, pred in zip(plain_preds, preds):
        torch.testing.assert_close(plain_pred['pred_score'],
                                   pred['pred_score'])


def test_checkpoint_of_another_model_is_an_error(toy_run, tmp_path):
    ckpt = tmp_path / 'other.pth'
    torch.save(
        dict(
            state_dict={
                'student.neck.weight': torch.ones(2),
                'learner.prototypes': torch.ones(2)
            }), ckpt)
    proc = _test(toy_run, tmp_path, ckpt=str(ckpt))
    assert proc.returncode == 1
    assert (
        f'test.py: error: checkpoint {ckpt} does not fit the model '
        '(ImageClassifier): 10 of its 10 weights are not in it, e.g. '
        "['backbone.features.0.weight'") in proc.stderr, proc.output[-3000:]
    assert 'Epoch(test)' not in proc.output


class _Wrapper(torch.nn.Module):

    def __init__(self, **children):
        super().__init__()
        for name, child in children.items():
            setattr(self, name, child)


def _net():
    return _Wrapper(backbone=torch.nn.Linear(2, 2), head=torch.nn.Linear(2, 1))


@pytest.mark.parametrize('wrapped,keys,layout', [
    (False, ['backbone.weight', 'backbone.bias', 'head.weight'], 'as_is'),
    (False, [
        'student.backbone.weight', 'student.backbone.bias',
        'student.head.weight', 'learner.p'
    ], 'from_distiller'),
    (True, ['backbone.weight', 'backbone.bias', 'head.weight'
            ], 'into_student'),
    (True, [
        'student.backbone.weight', 'student.backbone.bias',
        'student.head.weight', 'learner.p'
    ], 'as_is'),
])
def test_checkpoint_layouts(wrapped, keys, layout):
    model = _Wrapper(student=_net(), learner=torch.nn.Linear(1, 1)) \
        if wrapped else _net()
    assert test_tool.checkpoint_layout(model, keys, 'c.pth') == layout


@pytest.mark.parametrize(
    'wrapped,keys',
    [
        (False, ['student.backbone.weight', 'learner.p']),  # 3 of 4 missing
        (False, ['neck.weight']),
        (True, ['neck.weight', 'neck.bias']),
        (False, []),
    ])
def test_mostly_missing_weights_are_an_error(wrapped, keys):
    model = _Wrapper(student=_net()) if wrapped else _net()
    with pytest.raises(InputCheckError, match='checkpoint c.pth does not fit'):
        test_tool.checkpoint_layout(model, keys, 'c.pth')


def test_inputs_in_the_work_dir_are_never_overwritten(toy_run, tmp_path):
    """A training run's ``student_config.py`` and checkpoint, tested in
    their own work dir: the config dump goes into the run's timestamped
    folder."""
    work = tmp_path / 'train_work'
    work.mkdir()
    config = work / 'student_config.py'
    with open(toy.TOY_CLS) as f:
        config.write_text(f.read() + f'work_dir = {str(work)!r}\n')
    ckpt = work / 'student_epoch_2.pth'
    shutil.copy(osp.join(toy_run.work_dir, 'epoch_2.pth'), ckpt)
    before = {path: path.read_bytes() for path in (config, ckpt)}
    proc = run_tool(
        ['test.py', str(config),
         str(ckpt), '--cfg-options'] +
        toy.data_root_options(toy_run.data_root),
        cwd=str(tmp_path))
    assert proc.returncode == 0, proc.output[-3000:]
    _accuracy(proc.output)
    for path, data in before.items():
        assert path.read_bytes() == data, path
    dumped = glob.glob(str(work / '*' / 'student_config.py'))
    assert len(dumped) == 1, os.listdir(work)
    assert 'load_from' in open(dumped[0]).read()


def test_out_file_may_not_be_an_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    ckpt = tmp_path / 'model.pkl'
    ckpt.write_bytes(b'weights')
    args = test_tool.parse_args([toy.TOY_CLS, str(ckpt), '--out', 'model.pkl'])
    with pytest.raises(
            InputCheckError,
            match='--out model.pkl is the checkpoint given to test.py'):
        test_tool.build_config(args)
    assert ckpt.read_bytes() == b'weights'


def test_text_file_as_checkpoint_stops_before_testing(toy_run, tmp_path):
    text = tmp_path / 'model.pth'
    text.write_text('not a checkpoint')
    proc = _test(toy_run, tmp_path, ckpt=str(text))
    assert proc.returncode == 1
    assert f'{text} is not a PyTorch/mmengine checkpoint' in proc.stderr
    assert not osp.exists(tmp_path / 'work')


def test_missing_test_data_stops_before_testing(toy_run, tmp_path,
                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    ckpt = osp.join(toy_run.work_dir, 'epoch_2.pth')
    with pytest.raises(SystemExit) as exit_info:
        test_tool.main([
            toy.TOY_CLS, ckpt, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            f'test_dataloader.dataset.data_root={tmp_path}/none'
        ])
    message = str(exit_info.value.code)
    assert (f"test_dataloader.dataset.data_root = '{tmp_path}/none' does "
            'not exist') in message
    assert 'see README.md, section Data' in message
    assert not osp.exists(tmp_path / 'work')


def _build(tmp_path, monkeypatch, *args):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    root = toy.make_toy_images(str(tmp_path / 'data'), per_class=1)
    return test_tool.build_config(
        test_tool.parse_args([toy.TOY_CLS, 'x.pth', *args, '--cfg-options'] +
                             toy.data_root_options(root)))


def test_flags_set_the_config(tmp_path, monkeypatch):
    cfg = _build(tmp_path, monkeypatch, '--show-dir', 'vis', '--out', 'p.pkl',
                 '--local-rank', '1')
    hook = cfg.default_hooks.visualization
    assert hook.enable is True  # mmpretrain's VisualizationHook
    # a relative --show-dir is inside the work dir (here the default one)
    assert hook.out_dir == str(tmp_path / 'work_dirs' / 'toy_cls' / 'vis')
    assert cfg.test_evaluator[-1] == dict(
        type='mmengine.DumpResults', out_file_path='p.pkl')
    assert cfg.load_from == 'x.pth'
    cfg = _build(tmp_path, monkeypatch, '--show-dir', 'vis', '--work-dir',
                 'run')
    assert cfg.default_hooks.visualization.out_dir == str(tmp_path / 'run' /
                                                          'vis')
    cfg = _build(tmp_path, monkeypatch, '--show-dir', str(tmp_path / 'vis'))
    assert cfg.default_hooks.visualization.out_dir == str(tmp_path / 'vis')
    with pytest.raises(InputCheckError, match='tta_model'):
        _build(tmp_path, monkeypatch, '--tta')
    with pytest.raises(InputCheckError, match='.pkl'):
        _build(tmp_path, monkeypatch, '--out', 'preds.json')


@pytest.mark.parametrize('hook_type,flag,out_key', [
    ('mmdet.DetVisualizationHook', 'draw', 'test_out_dir'),
    ('mmseg.SegVisualizationHook', 'draw', None),
])
def test_visualization_of_each_library(hook_type, flag, out_key, tmp_path):
    from mmengine.config import Config
    cfg = Config(
        dict(
            default_scope=hook_type.split('.')[0],
            default_hooks=dict(
                visualization=dict(type=hook_type.split('.')[1])),
            visualizer=dict(type='Visualizer'),
            work_dir=str(tmp_path / 'work')))
    test_tool.enable_visualization(cfg, True, 'vis', 0.5)
    hook = cfg.default_hooks.visualization
    assert hook[flag] is True and hook.show is True and hook.wait_time == 0.5
    # absolute: mmdet would put a relative one under work_dir/<timestamp>,
    # mmseg under the current directory
    expected = str(tmp_path / 'work' / 'vis')
    if out_key:
        assert hook[out_key] == expected
    else:  # mmseg draws through the visualizer's save_dir
        assert cfg.visualizer.save_dir == expected
