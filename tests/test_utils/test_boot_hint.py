"""A config with ``mmprockd::`` bases, parsed by a script that never
imports mmprockd (a downstream project's copy of mmdet's tools/train.py).

- With ``mmprockd_boot`` run (what the ``mmprockd_boot.pth`` start-up file
  does), the bases resolve, the recipe base's ``custom_imports`` imports
  mmprockd while the config is parsed, and the model builds.
- Without it, mmengine stops with its own message, which names neither the
  file nor the fix; docs/user_guides/troubleshooting.md quotes it beside
  the fix, and mmprockd's tools add the fix to it.

Run: ``pytest tests/test_utils/test_boot_hint.py``
"""
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TROUBLESHOOTING = osp.join(REPO, 'docs', 'user_guides', 'troubleshooting.md')

# a whole config as docs/user_guides/your_project.md writes them; no
# teacher weights, so nothing is downloaded or converted
CONFIG = """\
_base_ = [
    'mmpretrain::resnet/resnet18_8xb16_cifar10.py',
    'mmprockd::_base_/teachers/mobilenetv2_in1k.py',
    'mmprockd::_base_/recipes/pkd_cls.py',
]
model = dict(
    _base_.pkd_cls,
    student=_base_.model,
    teacher=dict(_base_.mobilenetv2_in1k_teacher, ckpt=None),
    student_channels=[512])
custom_hooks = [*_base_.get('custom_hooks', []), *_base_.prockd_hooks]
"""

# never ``import mmprockd``; ``boot`` runs what mmprockd_boot.pth runs
SCRIPT = """\
import json, sys
if sys.argv[1] == 'boot':
    import mmprockd_boot
    mmprockd_boot.install()
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
out = dict(before='mmprockd' in sys.modules)
try:
    cfg = Config.fromfile('cfg.py')
except Exception as err:
    out['error'] = [type(err).__name__, str(err)]
else:
    out['after_parse'] = 'mmprockd' in sys.modules
    out['custom_imports'] = cfg.custom_imports.to_dict()
    init_default_scope(cfg.default_scope)
    out['model'] = type(MODELS.build(cfg.model)).__name__
print(json.dumps(out))
"""


def _run(tmp_path, code, *args, **env):
    (tmp_path / 'cfg.py').write_text(CONFIG)
    proc = subprocess.run([sys.executable, '-c', code, *args],
                          cwd=tmp_path,
                          env=dict(
                              os.environ,
                              PYTHONPATH=REPO,
                              PYTHONWARNINGS='ignore',
                              OMP_NUM_THREADS='1',
                              **env),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_recipe_base_imports_mmprockd_when_the_config_is_parsed(tmp_path):
    out = _run(tmp_path, SCRIPT, 'boot')
    assert out == dict(
        before=False,
        after_parse=True,
        custom_imports=dict(imports=['mmprockd'], allow_failed_imports=False),
        model='PKDDistiller')


def test_without_the_boot_file_mmengine_gives_the_message_the_docs_quote(
        tmp_path):
    # MMPROCKD_BOOT=0: the environment's mmprockd_boot.pth does nothing
    out = _run(tmp_path, SCRIPT, 'no-boot', MMPROCKD_BOOT='0')
    assert out == dict(
        before=False,
        error=[
            'AssertionError',
            'mmengine does not support to load mmprockd config.'
        ])
    with open(TROUBLESHOOTING) as f:
        row = [
            line for line in f
            if 'mmengine does not support to load mmprockd config' in line
        ]
    assert len(row) == 1 and '`python -m mmprockd_boot`' in row[0], row


# mmprockd imported, mmprockd_boot not importable (the package folder
# alone): the tools' load_config gives mmengine's message and the fix
TOOL = """\
import json, sys
sys.modules['mmprockd_boot'] = None
from mmprockd.preflight import InputCheckError, load_config
try:
    load_config('cfg.py')
except InputCheckError as err:
    print(json.dumps(str(err)))
"""


def test_the_tools_add_the_fix_to_mmengines_message(tmp_path):
    message = _run(tmp_path, TOOL, MMPROCKD_BOOT='0')
    assert message.startswith(
        'config cfg.py cannot be read: AssertionError: mmengine does not '
        'support to load mmprockd config. (its mmprockd:: bases are '
        'resolved by mmprockd_boot, which did not run in this interpreter: '
        'run `python -m mmprockd_boot` once'), message
    assert '`import mmprockd` before Config.fromfile' in message
