"""``tools/dist_train.sh`` and ``dist_test.sh``: two processes on the CPU
(gloo) through torchrun; and the Slurm scripts' srun command lines.

Run: ``pytest tests/test_tools/test_dist_train.py``
"""
import os
import os.path as osp
import re
import socket
import stat
import sys

import torch
from tool_runner import run_tool, toy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _launcher_env() -> dict:
    return dict(
        PORT=str(_free_port()), PYTHON=sys.executable, OMP_NUM_THREADS='1')


def test_dist_train_and_test_on_two_processes(toy_data_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    proc = run_tool(
        [
            'dist_train.sh', toy.TOY_CLS, '2', '--work-dir', work_dir,
            '--cfg-options'
        ] + toy.data_root_options(toy_data_root),
        cwd=str(tmp_path),
        **_launcher_env())
    assert proc.returncode == 0, proc.output[-4000:]
    assert re.search(r'Distributed training: True', proc.output)
    assert re.search(r'GPU number: 2', proc.output)  # the world size
    # each rank sees 4 of the 8 images: one batch of 4 per epoch
    assert re.search(r'Epoch\(train\) \[2\]\[1/1\]', proc.output)
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 2
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])

    out = str(tmp_path / 'preds.pkl')
    proc = run_tool(
        [
            'dist_test.sh', toy.TOY_CLS,
            osp.join(work_dir, 'epoch_2.pth'), '2', '--work-dir',
            str(tmp_path / 'test'), '--out', out, '--cfg-options'
        ] + toy.data_root_options(toy_data_root),
        cwd=str(tmp_path),
        **_launcher_env())
    assert proc.returncode == 0, proc.output[-4000:]
    found = re.findall(r'Epoch\(test\).*accuracy/top1: ([\d.]+)', proc.output)
    assert found and float(found[-1]) >= 87.5
    import pickle
    with open(out, 'rb') as f:
        assert len(pickle.load(f)) == 8  # both ranks' results gathered


def _fake_srun(tmp_path) -> str:
    """A ``srun`` that prints its arguments and environment."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    srun = bindir / 'srun'
    srun.write_text('#!/usr/bin/env bash\n'
                    'echo "PYTHONPATH=$PYTHONPATH"\n'
                    'for a in "$@"; do echo "ARG $a"; done\n')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_slurm_scripts_build_the_srun_command(tmp_path):
    path = _fake_srun(tmp_path) + os.pathsep + os.environ['PATH']
    env = dict(
        PATH=path,
        GPUS='16',
        GPUS_PER_NODE='4',
        CPUS_PER_TASK='3',
        SRUN_ARGS='--quotatype=auto --mem=0',
        PYTHON='py3')
    proc = run_tool(['slurm_train.sh', 'gpu', 'job1', 'a.py', 'wd', '--amp'],
                    cwd=str(tmp_path),
                    **env)
    assert proc.returncode == 0, proc.output
    args = [
        line[4:] for line in proc.stdout.splitlines()
        if line.startswith('ARG ')
    ]
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    assert args == [
        '-p', 'gpu', '--job-name=job1', '--gres=gpu:4', '--ntasks=16',
        '--ntasks-per-node=4', '--cpus-per-task=3', '--kill-on-bad-exit=1',
        '--signal=TERM@120', '--quotatype=auto', '--mem=0', 'py3', '-u',
        osp.join(repo, 'tools', 'train.py'), 'a.py', '--work-dir=wd',
        '--launcher=slurm', '--amp'
    ]
    assert proc.stdout.startswith(f'PYTHONPATH={repo}')

    env.pop('SRUN_ARGS')
    proc = run_tool(
        ['slurm_test.sh', 'gpu', 'job2', 'a.py', 'm.pth', '--out', 'p.pkl'],
        cwd=str(tmp_path),
        **env)
    assert proc.returncode == 0, proc.output
    args = [
        line[4:] for line in proc.stdout.splitlines()
        if line.startswith('ARG ')
    ]
    assert args[8:] == [
        'py3', '-u',
        osp.join(repo, 'tools', 'test.py'), 'a.py', 'm.pth',
        '--launcher=slurm', '--out', 'p.pkl'
    ]


def _fake_slurm(tmp_path, statuses) -> str:
    """A ``srun`` that appends its arguments (one line a call) to
    ``calls`` and exits with the next of ``statuses``; a ``scontrol`` that
    appends its arguments to ``scontrol``."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    (tmp_path / 'statuses').write_text('\n'.join(map(str, statuses)) + '\n')
    srun = bindir / 'srun'
    srun.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path}/calls
status=$(head -n 1 {tmp_path}/statuses)
sed -i 1d {tmp_path}/statuses
exit "$status"
""")
    scontrol = bindir / 'scontrol'
    scontrol.write_text(f'#!/usr/bin/env bash\necho "$*" >> '
                        f'{tmp_path}/scontrol\n')
    for tool in (srun, scontrol):
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return str(bindir) + os.pathsep + os.environ['PATH']


def _calls(tmp_path, name='calls'):
    path = tmp_path / name
    return path.read_text().splitlines() if path.exists() else []


def test_slurm_train_resumes_a_run_stopped_with_status_75(tmp_path):
    """75: stopped by SIGTERM (srun's --signal before the time limit) with
    a checkpoint; srun runs again with --resume. Another status ends the
    script with it."""
    env = dict(PATH=_fake_slurm(tmp_path, [75, 75, 3]), SIGNAL_TIME='300')
    proc = run_tool(['slurm_train.sh', 'gpu', 'job', 'a.py', 'wd', '--amp'],
                    cwd=str(tmp_path),
                    SLURM_JOB_ID='',
                    **env)
    assert proc.returncode == 3, proc.output
    calls = _calls(tmp_path)
    assert len(calls) == 3
    assert '--signal=TERM@300' in calls[0].split()
    assert calls[0].endswith('--work-dir=wd --launcher=slurm --amp')
    for call in calls[1:]:
        assert call.endswith('--launcher=slurm --amp --resume')
    assert 'resuming (restart 2 of 10)' in proc.stderr
    assert _calls(tmp_path, 'scontrol') == []


def test_slurm_train_requeues_a_batch_job_stopped_with_status_75(tmp_path):
    env = dict(PATH=_fake_slurm(tmp_path, [75]), SLURM_JOB_ID='4242')
    proc = run_tool(['slurm_train.sh', 'gpu', 'job', 'a.py', 'wd'],
                    cwd=str(tmp_path),
                    **env)
    assert proc.returncode == 75, proc.output
    assert _calls(tmp_path, 'scontrol') == ['requeue 4242']
    assert len(_calls(tmp_path)) == 1
    # the requeued job starts again: it resumes
    (tmp_path / 'calls').unlink()
    (tmp_path / 'statuses').write_text('0\n')
    proc = run_tool(['slurm_train.sh', 'gpu', 'job', 'a.py', 'wd'],
                    cwd=str(tmp_path),
                    SLURM_RESTART_COUNT='1',
                    **env)
    assert proc.returncode == 0, proc.output
    assert _calls(tmp_path)[0].endswith('--launcher=slurm --resume')
