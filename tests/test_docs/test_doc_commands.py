"""The commands the documentation gives run as written from a clean clone:
every script and repository file they name exists, and the README's
``python tools/...`` commands are accepted by the tool's own argument
parser."""
import glob
import importlib.util
import os.path as osp
import re
import shlex
import sys
from typing import List, Tuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOCS = ['README.md'] + sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'docs', '**', '*.md'), recursive=True))
# repository folders a command's argument may name; anything under them
# must exist (outputs go to work_dirs/, which is not one of them)
REPO_DIRS = ('configs/', 'tools/', 'data/', 'docs/', 'tests/', 'requirements/')
SHELL_BLOCK = re.compile(r'```(?:bash|sh|shell)\n(.*?)```', re.S)
# a command written inline, as in a table's reproduce column
INLINE = re.compile(r'(?<!`)`((?:python3?|bash) [^`]+)`(?!`)')


def shell_commands(text: str) -> List[str]:
    """The commands of the bash blocks of a Markdown text (continuation
    lines joined, comments dropped), then its inline ``python ...`` and
    ``bash ...`` spans; split at ``&&`` and ``;``."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        joined = re.sub(r'\s*\\\n\s*', ' ', block)
        for line in joined.splitlines():
            line = line.split(' #')[0].strip()
            if not line or line.startswith('#'):
                continue
            commands += [c.strip() for c in re.split(r'&&|;', line)]
    for span in INLINE.findall(SHELL_BLOCK.sub('', text)):
        commands += [c.strip() for c in re.split(r'&&|;', span)]
    return [c for c in commands if c]


def named_files(command: str) -> Tuple[List[str], List[str]]:
    """``(scripts, paths)``: the scripts a command runs (``python X.py``,
    ``bash X.sh``) and the repository paths among its arguments.
    Placeholders (``CONFIG``, ``$F``, ``<dir>``, globs) are skipped."""
    try:
        words = shlex.split(command)
    except ValueError:
        return [], []
    scripts, paths = [], []
    for i, word in enumerate(words):
        if re.search(r'[$<>*{}\[\]]|[A-Z]{3,}', word):
            continue
        prev = words[i - 1] if i else ''
        runner = prev in ('python', 'python3', 'bash', 'sh')
        if runner and word.endswith(('.py', '.sh')):
            scripts.append(word)
        elif word.startswith(REPO_DIRS):
            paths.append(word.split('=')[-1])
    return scripts, paths


def test_shell_commands_are_found_and_split():
    text = ('```bash\npython tools/train.py configs/a.py \\\n'
            '    --work-dir work_dirs/x  # a note\n# a comment\n'
            'cd x && bash tools/dist_train.sh CONFIG 8\n```\n'
            '```python\nimport x\n```\n'
            '| row | `python tools/test.py C --x` |\n')
    commands = shell_commands(text)
    assert commands == [
        'python tools/train.py configs/a.py --work-dir work_dirs/x', 'cd x',
        'bash tools/dist_train.sh CONFIG 8', 'python tools/test.py C --x'
    ]
    assert named_files(commands[0]) == (['tools/train.py'], ['configs/a.py'])
    assert named_files(commands[2]) == (['tools/dist_train.sh'], [])


@pytest.mark.parametrize('doc', DOCS)
def test_every_file_a_command_names_exists(doc):
    with open(osp.join(ROOT, doc)) as f:
        commands = shell_commands(f.read())
    missing = []
    for command in commands:
        scripts, paths = named_files(command)
        for path in scripts + paths:
            if not osp.exists(osp.join(ROOT, path)):
                missing.append(f'{path} (in: {command})')
    assert not missing, f'{doc} names files that do not exist: {missing}'


def test_the_readme_gives_the_two_set_up_commands():
    with open(osp.join(ROOT, 'README.md')) as f:
        commands = shell_commands(f.read())
    assert 'python tools/demo.py' in commands
    assert 'python -m pytest tests' in commands
    assert 'bash tools/install.sh' in commands


def _readme_tool_commands() -> List[Tuple[str, List[str]]]:
    with open(osp.join(ROOT, 'README.md')) as f:
        commands = shell_commands(f.read())
    out = []
    for command in commands:
        words = shlex.split(command)
        if len(words) > 1 and words[0] in ('python', 'python3') and \
                words[1].startswith('tools/') and words[1].endswith('.py'):
            out.append((words[1], words[2:]))
    return out


@pytest.mark.parametrize('script, argv', _readme_tool_commands())
def test_readme_tool_commands_parse(script, argv):
    """The tool's own ``parse_args`` accepts the README's arguments
    (placeholders such as ``CONFIG`` become a real config)."""
    path = osp.join(ROOT, script)
    sys.path.insert(0, osp.dirname(path))
    sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
    spec = importlib.util.spec_from_file_location(
        f'doc_{osp.basename(script)[:-3]}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert hasattr(module, 'parse_args'), f'{script} has no parse_args'
    argv = [
        'configs/prockd_retinanet_coco.py'
        if re.fullmatch(r'[A-Z_]+', a) else a for a in argv
    ]
    try:
        module.parse_args(argv)
    except SystemExit as e:  # argparse refused the command line
        pytest.fail(f'{script} {" ".join(argv)}: exit {e.code}')
