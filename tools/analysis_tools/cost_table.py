"""Render the JSON files of ``benchmark_cost.py --out`` as one Markdown
table, so the cost tables in docs/benchmark.md come from the measurements
and not from hand copying.

Usage::

    python tools/analysis_tools/cost_table.py work_dirs/cost/*.json
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional, Sequence

COLUMNS = [
    ('config', None), ('options', None), ('device', None), ('batch', None),
    ('size', None), ('amp', None), ('student step ms', 'student_step'),
    ('teacher ms', 'teacher_inference'), ('ProC-KD step ms', 'prockd_step'),
    ('cached step ms', 'prockd_step_cached'), ('images distilled', None),
    ('ProC-KD / (student + teacher)', 'prockd_over_student_plus_teacher'),
    ('ProC-KD / student', 'prockd_over_student'),
    ('cached / student', 'prockd_cached_over_student'),
    ('branch-phase step / student', 'branch_only_over_student'),
    ('student-phase step / student', None),
    ('recipe / student schedule', 'recipe_over_student_schedule'),
    ('deployed plugin / plain', 'deployed_with_plugin_over_plain'),
    ('peak GiB student -> ProC-KD', None)
]


def _student_phase(figures: dict) -> str:
    """[ours] The frozen-branch step of two-stage ProC-KD over the student
    step, and in brackets the same with the branch's outputs cached
    (``branch_cache``), where they could be."""
    ratios = figures['ratios']
    if 'frozen_branch_over_student' not in ratios:
        return '-'
    cell = f"{ratios['frozen_branch_over_student']:.3f}"
    if 'frozen_branch_cached_over_student' in ratios:
        cell += f" ({ratios['frozen_branch_cached_over_student']:.3f} cached)"
    return cell


def row(figures: dict) -> List[str]:
    """One table row from one ``benchmark_cost.py --out`` file."""
    args, res, ratios = (figures['args'], figures['results'],
                         figures['ratios'])
    opts = args.get('cfg_options') or {}
    cells = {
        'config':
        f"`{osp.basename(args['config'])}`",
        'options':
        ', '.join(f'{k}={v}' for k, v in opts.items()) or '-',
        'device':
        figures.get('device', args.get('device', '?')),
        'batch':
        str(args['batch']),
        'size':
        f"{args['size'][0]}x{args['size'][1]}",
        'amp':
        'yes' if args.get('amp') else 'no',
        'images distilled':
        res['prockd_step'].get('distilled_images', 'all'),
        'student-phase step / student':
        _student_phase(figures),
        'peak GiB student -> ProC-KD':
        f"{res['student_step']['peak_gib']:.2f} -> "
        f"{res['prockd_step']['peak_gib']:.2f}",
    }
    out = []
    for title, key in COLUMNS:
        if key is None:
            out.append(cells[title])
        elif key in res:
            out.append(f"{res[key]['ms']:.0f}")
        elif key in ratios:
            out.append(f'{ratios[key]:.3f}')
        else:
            out.append('-')
    return out


def render(paths: Sequence[str]) -> str:
    lines = [
        '| ' + ' | '.join(t for t, _ in COLUMNS) + ' |',
        '|' + '---|' * len(COLUMNS)
    ]
    for path in paths:
        with open(path) as f:
            lines.append('| ' + ' | '.join(row(json.load(f))) + ' |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('json', nargs='+', help='benchmark_cost.py --out files')
    args = p.parse_args(argv)
    missing = [j for j in args.json if not osp.isfile(j)]
    if missing:
        p.error(f'no such file: {", ".join(missing)}')
    print(render(args.json))
    return 0


if __name__ == '__main__':
    sys.exit(main())
