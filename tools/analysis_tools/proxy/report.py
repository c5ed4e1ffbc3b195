# Copyright (c) mmprockd contributors. All rights reserved.
"""The printed tables of the accuracy proxy benchmark.

The finished runs' ``result.json`` files become, per split, the mean and
sample std of every metric per row, the gain paired by seed over a
baseline row, the prototype branch's figure, the share of its lead that
the student keeps (the capture ratio) and entropy, a markdown table,
and the lines that say where a table comes from (command, commits, machine,
date).
"""
import json
import os
import os.path as osp
import shlex
import statistics
import subprocess
import time
from typing import Dict, List, Optional, Sequence

from .rows import RECOMMENDED, ROWS, TASKS
from .tables import split_run


# --------------------------------------------------------- aggregation
def _metrics_of(result: dict, split: str) -> Dict[str, float]:
    return result.get('metrics' if split == 'val' else f'{split}_metrics', {})


def aggregate(results: Sequence[dict],
              task: str = 'det',
              split: str = 'val',
              baseline: str = 'student') -> Dict[str, dict]:
    """Mean and sample std (0 for one seed) of each metric of ``task`` per
    run name, in the order of ``rows.ROWS`` (unknown names last), on one
    split; and the paired gain over ``baseline``: per seed that both ran,
    the run's metric minus the baseline's, then mean and std."""
    metrics = TASKS[task]['metrics']
    by_var: Dict[str, List[dict]] = {}
    for r in results:
        by_var.setdefault(r['row'], []).append(r)
    order = sorted(by_var, key=_run_order)
    table = {}
    for v in order:
        rows = sorted(by_var[v], key=lambda r: r['seed'])
        entry = dict(seeds=[r['seed'] for r in rows])
        entry['train_s'] = statistics.fmean(r['train_s'] for r in rows)
        for m in metrics:
            vals = [
                _metrics_of(r, split)[m] for r in rows
                if m in _metrics_of(r, split)
            ]
            if not vals:
                continue
            entry[m] = dict(
                mean=statistics.fmean(vals),
                std=statistics.stdev(vals) if len(vals) > 1 else 0.0,
                values=vals)
            base = {
                r['seed']: _metrics_of(r, split).get(m)
                for r in by_var.get(baseline, [])
            }
            gains = [
                _metrics_of(r, split)[m] - base[r['seed']] for r in rows if
                base.get(r['seed']) is not None and m in _metrics_of(r, split)
            ]
            if gains and v != baseline:
                entry[m]['gain'] = dict(
                    mean=statistics.fmean(gains),
                    std=statistics.stdev(gains) if len(gains) > 1 else 0.0,
                    n=len(gains))
        branch = [
            r['proto_branch_metrics'][metrics[0]] for r in rows
            if metrics[0] in r.get('proto_branch_metrics', {})
        ]
        if branch:
            entry['branch'] = statistics.fmean(branch)
            capture = capture_ratio(rows, by_var.get(baseline, []), metrics[0])
            if capture and v != baseline:
                entry['capture'] = capture
        entropy = [r['proto_entropy'] for r in rows if 'proto_entropy' in r]
        if entropy:  # mean over levels, then over seeds
            entry['entropy'] = {
                k: statistics.fmean(statistics.fmean(e[k]) for e in entropy)
                for k in ('assign_location', 'attn_location')
            }
        table[v] = entry
    return table


def capture_ratio(rows: Sequence[dict], baseline: Sequence[dict],
                  metric: str) -> Optional[dict]:
    """How much of the branch's lead over the baseline the distilled
    student keeps, on val: ``mean(student - baseline) / mean(branch -
    baseline)`` over the seeds that have all three (a ratio of paired
    means: per-seed ratios blow up where a seed's lead is small). 1: the
    student is as good as its branch; 0: no better than the baseline.
    None when no seed pairs or the branch does not lead (a randomly
    initialised teacher)."""
    base = {
        r['seed']: r['metrics'][metric]
        for r in baseline if metric in r.get('metrics', {})
    }
    kept, lead = [], []
    for r in rows:
        branch = r.get('proto_branch_metrics', {}).get(metric)
        own = r.get('metrics', {}).get(metric)
        b = base.get(r['seed'])
        if None not in (branch, own, b):
            kept.append(own - b)
            lead.append(branch - b)
    if not lead or statistics.fmean(lead) <= 0:
        return None
    return dict(
        ratio=statistics.fmean(kept) / statistics.fmean(lead), n=len(lead))


def _run_order(name: str) -> tuple:
    """Where a run name sorts: its row's place in ``rows.ROWS`` (unknown
    ones last, by name), then the plain run before ``@ITERS``."""
    row, iters = split_run(name)
    known = list(ROWS).index(row) if row in ROWS else None
    return (known is None, known or 0, row, iters or 0)


def describe(name: str, task: str) -> str:
    """What a run name's row is, its schedule, and whether it is the
    recipe we recommend for ``task``."""
    row, iters = split_run(name)
    text = ROWS[row]['what'] if row in ROWS else row
    if iters:
        text += f' ({iters} iterations)'
    if row == RECOMMENDED[task]:
        text += ' [recommended]'
    return text


def format_table(table: Dict[str, dict],
                 task: str = 'det',
                 baseline: str = 'student') -> str:
    """Markdown table; metrics as ``mean ± std`` in percent, the paired
    gain over ``baseline`` (``+mean ± std``) beside the first one, the
    mean training time, the prototype branch's val metric, the capture
    ratio over ``baseline`` (:func:`capture_ratio`) and how specialised
    its prototypes are (``proto_entropy``)."""
    metrics, scale = TASKS[task]['metrics'], TASKS[task]['scale']
    head = [
        'row', 'what it is', 'seeds', metrics[0],
        'paired gain' if baseline == 'student' else f'gain over {baseline}'
    ] + list(metrics[1:]) + [
        'train s', 'branch (val)', 'capture (val)',
        'entropy / log K (assign, attn)'
    ]
    lines = [
        '| ' + ' | '.join(head) + ' |',
        '|' + '---|' * len(head),
    ]
    for v, entry in table.items():
        cells = [v, describe(v, task), str(len(entry['seeds']))]
        for i, m in enumerate(metrics):
            if m in entry:
                cells.append(f'{scale * entry[m]["mean"]:.1f} ± '
                             f'{scale * entry[m]["std"]:.1f}')
            else:
                cells.append('-')
            if i == 0:
                gain = entry.get(m, {}).get('gain')
                cells.append(f'{scale * gain["mean"]:+.1f} ± '
                             f'{scale * gain["std"]:.1f}' if gain else '-')
        cells.append(f'{entry["train_s"]:.0f}')
        cells.append(f'{scale * entry["branch"]:.1f}' if 'branch' in
                     entry else '-')
        cap = entry.get('capture')
        cells.append(f'{cap["ratio"]:.2f}' if cap else '-')
        ent = entry.get('entropy')
        cells.append(f'{ent["assign_location"]:.2f}, '
                     f'{ent["attn_location"]:.2f}' if ent else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def load_results(work_dir: str) -> List[dict]:
    """Every ``result.json`` under ``work_dir``. A result of v0.1.0, which
    named its row ``variant``, is read as that row."""
    out = []
    for root, _, files in os.walk(work_dir):
        if 'result.json' in files:
            with open(osp.join(root, 'result.json')) as f:
                result = json.load(f)
            if 'row' not in result and 'variant' in result:
                result['row'] = result.pop('variant')
            out.append(result)
    return out


def git_commit() -> str:
    """The short commit of this checkout (``+`` if it has uncommitted
    changes), or ``'unknown'`` outside git."""
    repo = osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    try:

        def git(*cmd):
            return subprocess.run(['git', '-C', repo, *cmd],
                                  capture_output=True,
                                  text=True,
                                  check=True).stdout.strip()

        dirty = git('status', '--porcelain', '--untracked-files=no')
        return git('rev-parse', '--short', 'HEAD') + ('+' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def provenance(argv: Sequence[str], results: Sequence[dict]) -> str:
    """Where a table comes from: the command that reproduces it, the
    commits its runs were trained at, the machine and the date."""
    import platform
    from importlib.metadata import PackageNotFoundError, version
    try:
        torch_version = version('torch')
    except PackageNotFoundError:
        torch_version = 'not installed'
    commits = sorted({r['commit'] for r in results if 'commit' in r})
    older = sum('commit' not in r for r in results)
    runs = ', '.join(commits) or '-'
    if older:
        runs += f' ({older} runs from before commits were recorded)'
    command = ' '.join(['python tools/analysis_tools/proxy_benchmark.py'] +
                       [shlex.quote(a) for a in argv])
    return '\n'.join([
        f'command: `{command}`',
        f'runs trained at commit: {runs}; table printed at '
        f'{git_commit()}',
        f'machine: {platform.node() or "?"}, {os.cpu_count()} CPUs, '
        f'{platform.platform()}, Python {platform.python_version()}, '
        f'torch {torch_version}',
        f'date: {time.strftime("%Y-%m-%d %H:%M %Z")}',
    ])


def atomic_write_text(text: str, path: str) -> None:
    """Write through a temporary file and a rename."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)
