"""The bad-input matrix of ``tools/train.py``.

Each row is a bad input: the command line it is given with, the exception
``build_config`` must raise, and a regex the message must match: it names
the file or the key and what was expected. All are found before
``Runner.from_cfg``: no work dir, no model, no dataloader, no file
written. Rows run in-process (``build_config``), a second each; one row
goes through ``main`` to check the exit message.

A second part loads a checkpoint that runs code when unpickled (a live
payload) through every path that loads one: each refuses it, and the
payload never runs.

Run: ``pytest tests/test_tools/test_bad_inputs.py``
"""
import json
import os
import os.path as osp
import pickle
import re
import zipfile

import pytest
import torch
from mmengine.config import Config
from tool_runner import REPO, load_module, toy

from mmprockd.utils.checkpoint_io import InputCheckError
from mmprockd.utils.fingerprint import model_fingerprint

train_tool = load_module(osp.join(REPO, 'tools', 'train.py'), 'train_tool')

DEMO = 'configs/demo/prockd_mobilenetv2_retinanet_demo.py'
DEMO_TRAIN_ANN = osp.join(REPO, 'data', 'prockd_demo', 'annotations',
                          'instances_train.json')


class Payload:
    """Unpickling it writes the file named by ``path``: a live payload."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f'open({self.path!r}, "w").write("pwned")', ))


def _coco(**changes) -> dict:
    with open(DEMO_TRAIN_ANN) as f:
        data = json.load(f)
    data.update(changes)
    return data


def _degenerate(data: dict) -> dict:
    for i, ann in enumerate(data['annotations']):
        x, y, w, h = ann['bbox']
        ann['bbox'] = [x, y, 0, h] if i % 2 else [x, y, w, -3]
    return data


class Files:
    """The bad files of the matrix, written under ``root`` on first use."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.marker = osp.join(root, 'PWNED')

    def path(self, name: str) -> str:
        path = osp.join(self.root, name)
        if not osp.exists(path):
            getattr(self, 'make_' + name.split('.')[0])(path)
        return path

    # configs
    def make_syntax(self, path):
        with open(path, 'w') as f:
            f.write(f'_base_ = [{toy.TOY_CLS!r}]\n'
                    'train_cfg = dict(max_epochs=2,\n'
                    '                 val_interval=1 +)\n')

    def make_base_syntax(self, path):
        with open(path, 'w') as f:
            f.write("_base_ = ['./syntax.py']\n")
        self.path('syntax.py')

    def make_undefined(self, path):
        with open(path, 'w') as f:
            f.write(f'_base_ = [{toy.TOY_CLS!r}]\n'
                    'model = dict(head=dict(num_classes=NUM_CLASSES))\n')

    # annotations
    def _json(self, path, data):
        with open(path, 'w') as f:
            json.dump(data, f)

    def make_truncated(self, path):
        with open(DEMO_TRAIN_ANN) as f:
            text = f.read()
        with open(path, 'w') as f:
            f.write(text[:len(text) // 2])

    def make_no_anns(self, path):
        self._json(path, _coco(annotations=[]))

    def make_no_images(self, path):
        self._json(path, _coco(images=[], annotations=[]))

    def make_degenerate(self, path):
        self._json(path, _degenerate(_coco()))

    def _image_replaced(self, path, image_path):
        data = _coco()
        data['images'][0]['file_name'] = image_path  # absolute: joined as is
        self._json(path, data)

    def make_empty_image(self, path):
        image = osp.join(self.root, 'empty.jpg')
        open(image, 'wb').close()  # 0 bytes
        self._image_replaced(path, image)

    def make_missing_image(self, path):
        self._image_replaced(path, osp.join(self.root, 'gone.jpg'))

    def make_empty_data_list(self, path):
        self._json(path, dict(metainfo={}, data_list=[]))

    # checkpoints
    def make_text(self, path):
        with open(path, 'w') as f:
            f.write('hello, I am not a checkpoint\n')

    def make_random(self, path):
        with open(path, 'wb') as f:
            f.write(os.urandom(4096))

    def make_payload(self, path):
        torch.save(dict(state_dict={}, extra=Payload(self.marker)), path)

    def make_head_only(self, path):
        torch.save(dict(state_dict={'head.fc.weight': torch.zeros(1)}), path)

    def make_student_only(self, path):
        torch.save(
            dict(state_dict={'backbone.w': torch.zeros(1)}, meta={}), path)

    def _resume_ckpt(self, path, config, options=None, fingerprint=True):
        cfg = Config.fromfile(osp.join(REPO, config))
        if options:
            cfg.merge_from_dict(options)
        meta = dict(cfg=cfg.pretty_text, epoch=4)
        if fingerprint:
            meta['model_fingerprint'] = model_fingerprint(cfg.model)
        torch.save(
            dict(state_dict={}, optimizer={}, message_hub={}, meta=meta), path)

    def make_protos36(self, path):
        self._resume_ckpt(path, DEMO, {'model.learner.num_prototypes': 36})

    def make_protos36_old(self, path):
        self._resume_ckpt(
            path,
            DEMO, {'model.learner.num_prototypes': 36},
            fingerprint=False)

    def make_toy_ckpt(self, path):
        self._resume_ckpt(path, toy.TOY_CLS)

    def _stage1(self, path, options=None):
        """A stage-1 checkpoint of the demo config: its branch's tensors
        and the config text mmengine keeps."""
        cfg = Config.fromfile(osp.join(REPO, DEMO))
        if options:
            cfg.merge_from_dict(options)
        torch.save(
            dict(
                state_dict={'learner.prototypes': torch.zeros(72, 64)},
                meta=dict(cfg=cfg.pretty_text)), path)

    def make_stage1(self, path):
        self._stage1(path)

    def make_stage1_scale35(self, path):
        # another teacher setup, the same tensor shapes
        self._stage1(path, {'model.teacher.input_scale': 3.5})

    def make_score_thr(self, path):
        # another test_cfg only, and a fingerprint that counted it
        self._resume_ckpt(path, DEMO,
                          {'model.student.test_cfg.score_thr': 0.3})
        checkpoint = torch.load(path)
        checkpoint['meta']['model_fingerprint'] = 'f' * 16
        torch.save(checkpoint, path)

    def make_demo_ckpt(self, path):
        # the same model config, another teacher file: resumable
        self._resume_ckpt(path, DEMO,
                          {'model.teacher.ckpt': '/elsewhere/teacher.pth'})


# name: (config, extra args, cfg-options, exception, regex). In the
# strings, {F:name} is the path of a file of Files, {ROOT} the tmp dir.
TOY, DIST = toy.TOY_CLS, DEMO
ANN = 'train_dataloader.dataset.ann_file'
MATRIX = {
    # --- the config and --cfg-options
    'missing config': ('tests/data/toy/toy_clss.py', [], [], InputCheckError,
                       r"'tests/data/toy/toy_clss.py' does not exist"),
    'config syntax error':
    ('{F:syntax.py}', [], [], InputCheckError,
     r'syntax error: .*syntax\.py, line 3: invalid syntax'),
    'syntax error in a _base_ file': ('{F:base_syntax.py}', [], [],
                                      InputCheckError,
                                      r'syntax error: .*/syntax\.py, line 3'),
    'undefined name in config':
    ('{F:undefined.py}', [], [], InputCheckError,
     r"config .*undefined\.py cannot be read: NameError: .*NUM_CLASSES"),
    'misspelt top-level option key':
    (TOY, [], ['train_dataloder.batch_size=2'], InputCheckError,
     r"'train_dataloder.batch_size': the config has no top-level key "
     r"'train_dataloder' \(closest: \['train_dataloader'"),
    'misspelt nested option key':
    (TOY, [], ['train_dataloader.dataset.data_roott=/x'], InputCheckError,
     r"'train_dataloader.dataset.data_roott': train_dataloader.dataset has "
     r"no key 'data_roott' \(closest: \['data_root'\]\)"),
    'misspelt model option key':
    (DIST, [], ['model.learner.num_prototype=36'], InputCheckError,
     r"model.learner has no key 'num_prototype' \(closest: "
     r"\['num_prototypes'\]\)"),
    'string for an int option':
    (TOY, [], ['train_cfg.max_epochs=two'], InputCheckError,
     r"'train_cfg.max_epochs': expected an int like the config's 2, "
     r"got 'two'"),
    'float for an int option':
    (TOY, [], ['train_dataloader.batch_size=2.5'], InputCheckError,
     r"'train_dataloader.batch_size': expected an int .* got 2.5"),
    'string for a number option':
    (TOY, [], ['optim_wrapper.optimizer.lr=1e-3x'], InputCheckError,
     r"'optim_wrapper.optimizer.lr': expected a number like the config's "
     r"0.05, got '1e-3x'"),
    'string for a bool option':
    (TOY, [], ['train_dataloader.sampler.shuffle=yes'], InputCheckError,
     r"'train_dataloader.sampler.shuffle': expected a bool"),
    'scalar for a dict option':
    (TOY, [], ['optim_wrapper.optimizer=SGD'], InputCheckError,
     r"'optim_wrapper.optimizer': expected a dict .* got 'SGD'"),
    'list index out of range':
    (TOY, [], ['train_dataloader.dataset.pipeline.5.type=Resize'
               ], InputCheckError,
     r'train_dataloader.dataset.pipeline is a list of 2: \'5\' is not an '
     r'index'),
    '--auto-scale-lr without base_batch_size':
    (TOY, ['--auto-scale-lr'], [], InputCheckError,
     r'--auto-scale-lr needs auto_scale_lr=dict\(.*base_batch_size'),
    # --- data
    'missing data root': (TOY, [],
                          ['train_dataloader.dataset.data_root={ROOT}/nope'
                           ], InputCheckError,
                          r'train_dataloader.dataset.data_root = '
                          r"'{ROOT}/nope' does not exist.*see README.md, "
                          r'section Data'),
    'missing annotation file': (DIST, [], [ANN + '={ROOT}/gone.json'
                                           ], InputCheckError,
                                ANN + r" = '{ROOT}/gone.json' does not exist"),
    'truncated annotation JSON':
    (DIST, [], [ANN + '={F:truncated.json}'], InputCheckError,
     ANN + r' = {F:truncated.json} is not valid JSON \(.* at line 1 '
     r'column \d+; \d+ bytes: truncated\?\); expected a COCO-style'),
    'truncated val annotation JSON':
    (DIST, [], ['val_dataloader.dataset.ann_file={F:truncated.json}'],
     InputCheckError, r'val_dataloader.dataset.ann_file = '
     r'{F:truncated.json} is not valid JSON'),
    'empty annotation list':
    (DIST, [], [ANN + '={F:no_anns.json}'], InputCheckError,
     ANN + r' = {F:no_anns.json}: no usable box: its "annotations" list is '
     r'empty; expected at least one "bbox"'),
    'no images':
    (DIST, [], [ANN + '={F:no_images.json}'], InputCheckError,
     ANN + r' = {F:no_images.json}: its "images" list is empty; expected '
     r'at least one image'),
    'every box of zero or negative size':
    (DIST, [], [ANN + '={F:degenerate.json}'], InputCheckError,
     ANN + r' = {F:degenerate.json}: no usable box: all its \d+ boxes have '
     r'zero or negative size; expected .* w >= 1 and h >= 1'),
    '0-byte image':
    (DIST, [], [ANN + '={F:empty_image.json}'], InputCheckError,
     ANN + r' = {F:empty_image.json} lists 1 image\(s\) that cannot be read: '
     r'{ROOT}/empty.jpg \(image id \d+\): empty, 0 bytes'),
    'missing image':
    (DIST, [], [ANN + '={F:missing_image.json}'], InputCheckError,
     ANN + r' = {F:missing_image.json} lists 1 image\(s\) that cannot be '
     r'read: {ROOT}/gone.jpg \(image id \d+\): missing'),
    'empty data_list':
    (DIST, [], [ANN + '={F:empty_data_list.json}'], InputCheckError,
     ANN + r' = {F:empty_data_list.json}: data_list is empty; expected at '
     r'least one sample'),
    # --- checkpoints the model loads, and the model config
    'missing teacher checkpoint':
    (DIST, [], ['model.teacher.ckpt={ROOT}/teacher.pth'], InputCheckError,
     r"model.teacher.ckpt: checkpoint file '{ROOT}/teacher.pth' does not "
     r'exist'),
    'random-bytes teacher checkpoint':
    (DIST, [], ['model.teacher.ckpt={F:random.pth}'], InputCheckError,
     r'model.teacher.ckpt: {F:random.pth} is not a PyTorch/mmengine '
     r'checkpoint'),
    'text file as teacher checkpoint':
    (DIST, [], ['model.teacher.ckpt={F:text.pth}'], InputCheckError,
     r'model.teacher.ckpt: {F:text.pth} is not a PyTorch/mmengine '
     r'checkpoint'),
    'payload as teacher checkpoint':
    (DIST, [], ['model.teacher.ckpt={F:payload.pth}'], InputCheckError,
     r'model.teacher.ckpt: {F:payload.pth} is not a PyTorch/mmengine '
     r'checkpoint: it pickles exec, which a weights-only load '
     r'refuses'),
    'teacher checkpoint without the ckpt_prefix keys':
    (DIST, [], ['model.teacher.ckpt={F:head_only.pth}'], InputCheckError,
     r'model.teacher.ckpt: {F:head_only.pth} holds no weight under '
     r"model.teacher.ckpt_prefix = 'backbone.' \(its first keys: "
     r"\['head.fc.weight'\]\); expected a checkpoint of the teacher's "
     r'backbone'),
    'unreachable teacher URL':
    (DIST, [], ['model.teacher.ckpt=http://127.0.0.1:9/no_such_teacher.pth'
                ], InputCheckError,
     r'model.teacher.ckpt: http://127.0.0.1:9/no_such_teacher.pth '
     r'could not be downloaded or read: .*Check the URL'),
    'missing student_ckpt':
    (DIST, [], ['model.student_ckpt={ROOT}/student.pth'], InputCheckError,
     r"model.student_ckpt: checkpoint file '{ROOT}/student.pth' does not "
     r'exist'),
    'student_ckpt of another model':
    (DIST, [], ['model.student_ckpt={F:head_only.pth}'], InputCheckError,
     r'model.student_ckpt: {F:head_only.pth} does not fit model.student '
     r'\(RetinaNet\): 148 of its 148 weights are not in it, e.g. '
     r"\['backbone.conv1.weight', 'backbone.bn1.weight', 'backbone.bn1.bias'"
     r"\]; the file holds 1, e.g. \['head.fc.weight'\]. Expected a "
     r'checkpoint of this student'),
    'wrong student_channels':
    (DIST, [], ['model.student_channels=[32,32,32,32,32]'], InputCheckError,
     r"model.student_channels = \[32, 32, 32, 32, 32\], but the student's "
     r'neck \(FPN, out_channels=64, num_outs=5\) .* expected \[64, 64, 64, '
     r'64, 64\]'),
    'too few student_channels':
    (DIST, [], ['model.student_channels=[64,64,64]'], InputCheckError,
     r'model.student_channels = \[64, 64, 64\], .*expected \[64, 64, 64, '
     r'64, 64\]'),
    'missing branch_ckpt':
    (DIST, [], ['model.branch_ckpt={ROOT}/stage1.pth'], InputCheckError,
     r"model.branch_ckpt: checkpoint file '{ROOT}/stage1.pth' does not "
     r'exist'),
    'student-only file as branch_ckpt':
    (DIST, [], ['model.branch_ckpt={F:student_only.pth}'], InputCheckError,
     r'model.branch_ckpt: {F:student_only.pth} holds no prototype branch '
     r'\(no learner.\* tensors\); expected a checkpoint of a stage-1'),
    'branch_ckpt of a stage 1 with another teacher setup':
    (DIST, [], ['model.branch_ckpt={F:stage1_scale35.pth}'], InputCheckError,
     r'model.branch_ckpt: {F:stage1_scale35.pth} was written by a stage 1 '
     r"with other settings: model.teacher.input_scale: 3.5 in the "
     r"checkpoint, '<absent>' in the config"),
    'zero std in the student\'s preprocessor':
    (DIST, [], ['model.student.data_preprocessor.std=[0,0,0]'],
     InputCheckError, r'model.student.data_preprocessor.std = \[0, 0, 0\]: '
     r'the images are divided by it, so every std must be positive'),
    'zero std in the teacher\'s normalisation':
    (DIST, [], ['model.teacher.std=[58.4,0,57.4]'], InputCheckError,
     r'model.teacher.std = \[58.4, 0, 57.4\]: .* must be positive'),
    'zero std in the top-level preprocessor':
    (TOY, [], ['data_preprocessor.std=[0.0]'], InputCheckError,
     r'data_preprocessor.std = \[0.0\]: .* must be positive'),
    'missing load_from':
    (TOY, [], ['load_from={ROOT}/gone.pth'], InputCheckError,
     r"load_from: checkpoint file '{ROOT}/gone.pth' does not exist"),
    'text file as load_from':
    (TOY, [], ['load_from={F:text.pth}'], InputCheckError,
     r'load_from: {F:text.pth} is not a PyTorch/mmengine checkpoint'),
    # --- --resume
    'missing --resume file': (TOY, ['--resume',
                                    '{ROOT}/gone.pth'], [], InputCheckError,
                              r"--resume: checkpoint file '{ROOT}/gone.pth' "
                              r'does not exist'),
    'text file as --resume':
    (TOY, ['--resume', '{F:text.pth}'], [], InputCheckError,
     r'--resume: {F:text.pth} is not a PyTorch/mmengine checkpoint'),
    'payload as --resume':
    (TOY, ['--resume', '{F:payload.pth}'], [], InputCheckError,
     r'--resume: {F:payload.pth} is not a PyTorch/mmengine checkpoint: it '
     r'pickles exec'),
    'student-only file as --resume':
    (TOY, ['--resume', '{F:student_only.pth}'], [], InputCheckError,
     r"--resume: {F:student_only.pth} is not a full training checkpoint: it "
     r"lacks \['optimizer', 'message_hub'\] .* use --cfg-options "
     r'load_from={F:student_only.pth}'),
    '--resume with another num_prototypes':
    (DIST, ['--resume', '{F:protos36.pth}'], [], InputCheckError,
     r'--resume: {F:protos36.pth} was written by another model config '
     r'\(fingerprint \w+, this config \w+\): model.learner.num_prototypes: '
     r'36 in the checkpoint, 72 in the config'),
    '--resume, another num_prototypes, no fingerprint':
    (DIST, ['--resume', '{F:protos36_old.pth}'], [], InputCheckError,
     r'model.learner.num_prototypes: 36 in the checkpoint, 72 in the '
     r'config'),
    '--resume with a checkpoint of another config':
    (DIST, ['--resume', '{F:toy_ckpt.pth}'], [], InputCheckError,
     r'--resume: {F:toy_ckpt.pth} was written by another model config .*'
     r"model.backbone.type: 'LeNet5' in the checkpoint, '<absent>'"),
}


def _fill(text: str, files: Files) -> str:
    """Put the paths into a row's strings (files are made on first use)."""
    text = text.replace('{ROOT}', files.root)
    return re.sub(r'\{F:([\w.]+)\}', lambda m: files.path(m.group(1)), text)


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> Files:
    return Files(str(tmp_path_factory.mktemp('bad_inputs')))


def _args(config, extra, options, data_root, work_dir):
    if config == TOY:
        options = toy.data_root_options(data_root) + options
    argv = [config, '--work-dir', work_dir] + extra
    return argv + (['--cfg-options'] + options if options else [])


@pytest.mark.parametrize('case', list(MATRIX))
def test_bad_input(case, files, toy_data_root, tmp_path, monkeypatch):
    config, extra, options, error, pattern = MATRIX[case]
    # paths are escaped for the regex after they are put in
    pattern = re.sub(r'\{F:([\w.]+)\}',
                     lambda m: re.escape(files.path(m.group(1))), pattern)
    pattern = pattern.replace('{ROOT}', re.escape(files.root))
    work_dir = str(tmp_path / 'work')
    argv = [
        _fill(a, files)
        for a in _args(config, extra, options, toy_data_root, work_dir)
    ]
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    with pytest.raises(error) as info:
        train_tool.build_config(train_tool.parse_args(argv))
    message = str(info.value)
    assert re.search(pattern, message), message
    # never torch's advice to load a bad file with weights_only=False
    assert 'weights_only' not in message and 'safe_globals' not in message
    assert not osp.exists(files.marker), 'the payload ran'
    # stopped before the runner: no work dir, nothing written
    assert not osp.exists(work_dir)


def test_main_prints_the_error_and_exits(files, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    work_dir = str(tmp_path / 'work')
    with pytest.raises(SystemExit) as info:
        train_tool.main([
            DEMO, '--work-dir', work_dir, '--cfg-options',
            f'{ANN}={files.path("truncated.json")}'
        ])
    assert str(info.value.code).startswith(
        f'train.py: error: {ANN} = {files.path("truncated.json")} is not '
        'valid JSON')
    assert not osp.exists(work_dir)


def test_some_boxes_of_zero_size_are_counted_and_logged(files):
    data = _coco()
    n = len(data['annotations'])
    for ann in data['annotations'][:3]:
        ann['bbox'][2] = 0
    path = osp.join(files.root, 'three_bad.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    cfg.train_dataloader.dataset.ann_file = path
    from mmprockd.preflight import check_annotations
    warnings = check_annotations(cfg, ['train_dataloader'])
    assert len(warnings) == 1
    assert (f'{ANN} = {path}: 3 of its {n} boxes have zero or negative '
            'size') in warnings[0]
    assert check_annotations(
        Config.fromfile(osp.join(REPO, DEMO)), ['train_dataloader']) == []


def test_resume_of_the_same_model_config_passes(files, monkeypatch):
    """Another teacher file (a path key) is the same model: resumable."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    ckpt = files.path('demo_ckpt.pth')
    cfg = train_tool.build_config(
        train_tool.parse_args([DEMO, '--resume', ckpt]))
    assert cfg.resume is True and cfg.load_from == ckpt
    assert dict(type='mmprockd.ConfigFingerprintHook') in cfg.custom_hooks


def test_resume_with_another_test_cfg_passes(files, monkeypatch):
    """``model.student.test_cfg`` is read by testing only: a checkpoint
    whose config has another ``score_thr`` resumes (its fingerprint, of
    the same model otherwise, included the key)."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    ckpt = files.path('score_thr.pth')
    cfg = train_tool.build_config(
        train_tool.parse_args([DEMO, '--resume', ckpt]))
    assert cfg.resume is True and cfg.load_from == ckpt
    assert cfg.model.student.test_cfg.score_thr != 0.3
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    changed = cfg.model.to_dict()
    changed['student']['test_cfg']['score_thr'] = 0.3
    assert model_fingerprint(changed) == model_fingerprint(cfg.model)


def test_branch_ckpt_of_a_matching_stage_1_passes(files, monkeypatch):
    """A stage 1 of the same teacher, branch and input settings; its other
    settings (here a loss weight) may differ."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    ckpt = files.path('stage1.pth')
    cfg = train_tool.build_config(
        train_tool.parse_args([
            DEMO, '--cfg-options', f'model.branch_ckpt={ckpt}',
            'model.proto_weight=0.25'
        ]))
    assert cfg.model.branch_ckpt == ckpt
    # batch augments in stage 2 (Mixup) are not the branch's input
    # normalisation: accepted; another std is not
    from mmprockd.preflight import check_branch_checkpoint
    cfg.model.student.data_preprocessor.batch_augments = [
        dict(type='mmpretrain.Mixup', alpha=1.0)
    ]
    check_branch_checkpoint(cfg)
    cfg.model.student.data_preprocessor.std = [1.0, 1.0, 1.0]
    with pytest.raises(
            InputCheckError,
            match=r'model.student.data_preprocessor.std: '
            r'\[58.395, 57.12, 57.375\] in the checkpoint, '
            r'\[1.0, 1.0, 1.0\] in the config'):
        check_branch_checkpoint(cfg)


def test_student_ckpt_of_the_student_passes(files, monkeypatch):
    """A checkpoint of the demo's student passes as a plain mmdet file, as
    a ProtoDistiller checkpoint (``student.*`` keys beside the branch's)
    and as a DDP one (``module.``); the same names with other shapes do
    not, and the message names a weight with both shapes."""
    from mmengine.registry import DefaultScope

    from mmprockd.preflight import check_student_checkpoint
    from mmprockd.registry import MODELS
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    with DefaultScope.overwrite_default_scope('mmdet'):
        state = MODELS.build(cfg.model.student).state_dict()
    assert len(state) == 148
    layouts = dict(
        plain=dict(state_dict=state, meta={}),
        distiller=dict(
            state_dict={
                **{
                    f'student.{k}': v
                    for k, v in state.items()
                }, 'learner.prototypes': torch.zeros(72, 64)
            }),
        ddp={
            f'module.{k}': v
            for k, v in state.items()
        })
    for name, checkpoint in layouts.items():
        path = osp.join(files.root, f'student_{name}.pth')
        torch.save(checkpoint, path)
        built = train_tool.build_config(
            train_tool.parse_args(
                [DEMO, '--cfg-options', f'model.student_ckpt={path}']))
        assert built.model.student_ckpt == path
    flat = {k: v.reshape(-1)[:1] for k, v in state.items()}
    with pytest.raises(
            InputCheckError,
            match=r"model.student_ckpt: flat.pth does not fit model.student "
            r"\(RetinaNet\): 148 of its 148 weights are not in it, e.g. "
            r"\['backbone.conv1.weight' \(\[1\] in the file, \[64, 3, 7, 7\] "
            r'in the student\)'):
        check_student_checkpoint(
            dict(state_dict=flat), 'flat.pth', 'model.student_ckpt', cfg.model,
            'mmdet')


def test_fingerprint_hook_writes_the_model_fingerprint():
    from types import SimpleNamespace

    from mmprockd.engine import ConfigFingerprintHook
    cfg = Config.fromfile(osp.join(REPO, DEMO))
    checkpoint = dict(meta=dict(epoch=1))
    ConfigFingerprintHook().before_save_checkpoint(
        SimpleNamespace(cfg=cfg), checkpoint)
    assert checkpoint['meta']['model_fingerprint'] == model_fingerprint(
        cfg.model)
    # key order and weight paths do not change it; a model setting does
    moved = dict(reversed(list(cfg.model.to_dict().items())))
    moved['teacher'] = dict(moved['teacher'], ckpt='/other/teacher.pth')
    assert model_fingerprint(moved) == model_fingerprint(cfg.model)
    moved['learner'] = dict(moved['learner'], num_prototypes=36)
    assert model_fingerprint(moved) != model_fingerprint(cfg.model)


# ------------------------------------------------ live payload, every path


@pytest.fixture
def payload(tmp_path):
    """A checkpoint whose unpickling writes ``marker``; both paths."""
    marker = str(tmp_path / 'PWNED')
    path = str(tmp_path / 'payload.pth')
    torch.save(dict(state_dict={}, extra=Payload(marker)), path)
    return path, marker


def _refused(load, marker, match=r'exec'):
    with pytest.raises(BaseException) as info:
        load()
    assert not osp.exists(marker), 'the payload ran'
    message = str(getattr(info.value, 'code', None) or info.value)
    assert re.search(match, message), message
    assert 'weights_only' not in message
    return message


def test_payload_check_checkpoint(payload):
    from mmprockd.utils.checkpoint_io import check_checkpoint
    path, marker = payload
    for key in ('--resume', 'load_from', 'checkpoint'):
        _refused(lambda: check_checkpoint(path, key), marker,
                 f'{re.escape(key)}: .* it pickles exec')


def test_payload_mmengine_loaders(payload, tmp_path, monkeypatch):
    """Runner.resume, load_from, init_cfg, student_ckpt and tools/test.py's
    runner load through mmengine's CheckpointLoader: local and http(s)."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint
    path, marker = payload
    _refused(lambda: CheckpointLoader.load_checkpoint(path), marker)
    _refused(lambda: load_checkpoint(torch.nn.Linear(1, 1), path), marker)
    # a URL already in the torch hub cache is loaded without a download
    hub = tmp_path / 'hub'
    (hub / 'checkpoints').mkdir(parents=True)
    os.link(path, hub / 'checkpoints' / 'payload.pth')
    monkeypatch.setattr(torch.hub, '_hub_dir', str(hub))
    _refused(
        lambda: CheckpointLoader.load_checkpoint(
            'https://example.invalid/payload.pth'), marker)


def test_payload_frozen_teacher(payload):
    from mmprockd.models.distillers.frozen_teacher import _load_state_dict
    path, marker = payload
    message = _refused(lambda: _load_state_dict(path), marker,
                       r'not a readable checkpoint: it pickles exec')
    assert 'safe_globals' not in message


def test_payload_converter(payload, tmp_path):
    converter = load_module(
        osp.join(REPO, 'tools', 'model_converters', 'prockd_to_student.py'),
        'prockd_to_student')
    path, marker = payload
    out = str(tmp_path / 'student.pth')
    _refused(lambda: converter.main([path, out]), marker)
    assert not osp.exists(out)


def test_payload_visualize_prototypes(payload):
    tool = load_module(
        osp.join(REPO, 'tools', 'analysis_tools', 'visualize_prototypes.py'),
        'visualize_prototypes')
    path, marker = payload
    _refused(lambda: tool.load_state_dict(path), marker)


def test_payload_test_tool(payload, toy_data_root, tmp_path, monkeypatch):
    tool = load_module(osp.join(REPO, 'tools', 'test.py'), 'test_tool')
    path, marker = payload
    monkeypatch.chdir(REPO)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    work_dir = str(tmp_path / 'work')
    _refused(
        lambda: tool.main([
            toy.TOY_CLS, path, '--work-dir', work_dir, '--cfg-options', *toy.
            data_root_options(toy_data_root)
        ]), marker, r'checkpoint: .* it pickles exec')
    assert not osp.exists(work_dir)


def test_payload_atomic_checkpoint_scan(tmp_path):
    """A legacy-format (non-zip) file is loaded fully by the scan that
    picks the checkpoint ``--resume`` continues from."""
    from mmprockd.engine import is_complete_checkpoint
    marker = str(tmp_path / 'PWNED')
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(
        dict(extra=Payload(marker)),
        path,
        _use_new_zipfile_serialization=False)
    assert is_complete_checkpoint(path) is False
    assert not osp.exists(marker)


def test_payload_is_live(payload):
    """The payload does run when unpickled without the weights-only
    guard: the tests above would catch a path that loads it."""
    path, marker = payload
    with zipfile.ZipFile(path) as archive:
        name = [n for n in archive.namelist() if n.endswith('data.pkl')]
        data = archive.read(name[0])
    pickle.loads(data)  # no tensors: plain pickle reads it
    assert osp.exists(marker)


# ------------------------------------------------- one run per work dir


def test_a_second_run_on_a_locked_work_dir_is_refused_with_the_pid(
        toy_data_root, tmp_path, monkeypatch):
    """Another process holds the work dir's lock, as a live run does: a
    run on that work dir stops before building anything, naming the
    other's PID; once that process is gone the lock is free, with no file
    to clean up."""
    import subprocess
    import sys

    from mmprockd.utils.work_dir_lock import LOCK_NAME, WorkDirLock
    work_dir = tmp_path / 'work'
    holder = subprocess.Popen([
        sys.executable, '-c', 'import sys, time\n'
        'from mmprockd.utils.work_dir_lock import WorkDirLock\n'
        f'WorkDirLock({str(work_dir)!r}).acquire()\n'
        'print("locked", flush=True)\n'
        'time.sleep(3600)\n'
    ],
                              stdout=subprocess.PIPE,
                              text=True,
                              env=dict(
                                  os.environ,
                                  PYTHONPATH=REPO,
                                  PYTHONWARNINGS='ignore'))
    try:
        assert holder.stdout.readline().strip() == 'locked'
        monkeypatch.delenv('LOCAL_RANK', raising=False)
        with pytest.raises(SystemExit) as info:
            train_tool.main([
                toy.TOY_CLS, '--work-dir',
                str(work_dir), '--cfg-options',
                *toy.data_root_options(toy_data_root)
            ])
        assert str(info.value.code) == (
            f'train.py: error: --work-dir {work_dir} is in use by another '
            f'training run (PID {holder.pid}, which holds '
            f'{work_dir / LOCK_NAME}): wait for it to end or stop it, or '
            'train into another --work-dir')
        assert sorted(os.listdir(work_dir)) == [LOCK_NAME]  # no run began
    finally:
        holder.kill()
        holder.wait()
    lock = WorkDirLock(str(work_dir))
    lock.acquire()  # the dead process's lock went with it
    assert (work_dir / LOCK_NAME).read_text() == f'{os.getpid()}\n'
    lock.release()
